"""Per-conversation context in Redis: the project the conversation is about, for follow-ups.

Best-effort: without Redis a conversation simply has no memory ("what about its team?" asks
which project is meant), and every answer still goes out.
"""

from __future__ import annotations

import json
import logging

from chainlens import best_effort
from chainlens.deps import Deps
from tools.results import Project

log = logging.getLogger(__name__)

CONVERSATION_TTL_S = 3600  # a follow-up an hour later is a new conversation


def memory_key(deps: Deps, conversation_id: str) -> str:
    return deps.keys("agent", "conv", conversation_id)


def memory_value(project: Project) -> str:
    """What is stored for a conversation about `project` (also replayed by the turn cache)."""
    return json.dumps({"project": project.model_dump(mode="json")})


async def remembered_project(deps: Deps, conversation_id: str | None) -> Project | None:
    """The project this conversation was last about, if it is still remembered."""
    if not conversation_id:
        return None
    key = memory_key(deps, conversation_id)
    raw = await best_effort.attempt(
        deps.redis, "conversation read", lambda: deps.redis.get(key), None
    )
    if raw is None:
        return None
    try:
        return Project.model_validate(json.loads(raw)["project"])
    except (ValueError, KeyError, TypeError):
        log.warning("dropping unreadable conversation context %s", conversation_id)
        return None


async def remember_project(deps: Deps, conversation_id: str | None, project: Project) -> None:
    """Make `project` what "it" means in this conversation for the next hour."""
    if not conversation_id:
        return
    key, value = memory_key(deps, conversation_id), memory_value(project)
    await best_effort.attempt(
        deps.redis,
        "conversation write",
        lambda: deps.redis.set(key, value, ex=CONVERSATION_TTL_S),
        None,
    )
