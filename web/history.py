"""The recent turns of each web conversation, so the widget shows them again after a reload.

Usage and query logs keep the question but not the answer, and the agent's conversation
memory keeps only the project, so every answered web turn is also kept here, in Redis next
to that memory: the last `MAX_TURNS` turns of each conversation, and for each identity the
conversation it is in now (what a reloaded widget continues; "new chat" starts another).
Both expire after `HISTORY_TTL_S` without a new turn. Like all Redis state this is a
convenience: losing it loses no request, quota or payment.

Errors: reads raise redis' `RedisError`; `record_turn` is best effort (one warning per outage), so a
delivered answer never turns into an error because its transcript could not be saved.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from chainlens import best_effort
from chainlens.deps import Deps, hash_tag
from chainlens.redis_reply import as_bytes_or_none

log = logging.getLogger(__name__)

MAX_TURNS = 20
HISTORY_TTL_S = 7 * 24 * 3600
DEFAULT_CONVERSATION = "default"  # what a client that names no conversation is in


class TurnSource(BaseModel):
    source: str
    url: str


class StoredTurn(BaseModel):
    question: str
    answer: str
    sources: list[TurnSource] = []
    project: dict[str, Any] | None = None
    chart_url: str | None = None
    at: datetime


def scoped_conversation_id(identity: str, conversation_id: str | None) -> str:
    """The stored id of a caller's conversation: nobody can read or continue another's."""
    return f"{identity}:{conversation_id or DEFAULT_CONVERSATION}"[:200]


# Both keys of an identity carry its hash tag: `record_turn` writes them in one MULTI, which a
# Redis Cluster runs only on keys of one slot.
def _turns_key(deps: Deps, identity: str, conversation_id: str | None) -> str:
    return deps.keys(
        "web", "turns", hash_tag(identity), scoped_conversation_id(identity, conversation_id)
    )


def _current_key(deps: Deps, identity: str) -> str:
    return deps.keys("web", "conv-now", hash_tag(identity))


def new_conversation_id() -> str:
    return "c" + secrets.token_urlsafe(12)


async def record_turn(
    deps: Deps, *, identity: str, conversation_id: str | None, question: str, final: dict[str, Any]
) -> None:
    """Keep an answered turn (`final` is the answer as the API returns it) as the newest of
    its conversation, and make that conversation the identity's current one."""
    turn = StoredTurn(
        question=question,
        answer=str(final.get("response", "")),
        sources=[TurnSource(source=s["source"], url=s["url"]) for s in final.get("sources", [])],
        project=final.get("project"),
        chart_url=final.get("chart_url"),
        at=datetime.now(UTC),
    )
    key = _turns_key(deps, identity, conversation_id)

    async def write() -> None:
        async with deps.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, turn.model_dump_json())
            pipe.ltrim(key, -MAX_TURNS, -1)
            pipe.expire(key, HISTORY_TTL_S)
            pipe.set(
                _current_key(deps, identity),
                conversation_id or DEFAULT_CONVERSATION,
                ex=HISTORY_TTL_S,
            )
            await pipe.execute()

    # Best effort: an outage is logged once (chainlens.best_effort), not per turn.
    await best_effort.attempt(deps.redis, "web history write", write, None)


async def recent_turns(deps: Deps, *, identity: str, conversation_id: str) -> list[StoredTurn]:
    """The conversation's kept turns, oldest first."""
    raw = await deps.redis.lrange(_turns_key(deps, identity, conversation_id), 0, -1)
    turns = []
    for item in raw:
        try:
            turns.append(StoredTurn.model_validate_json(item))
        except ValidationError:
            log.warning("dropping an unreadable turn of a web conversation")
    return turns


async def current_conversation(deps: Deps, identity: str) -> str:
    """The conversation the identity is in now (the default one until it starts another)."""
    raw = as_bytes_or_none(await deps.redis.get(_current_key(deps, identity)))
    return raw.decode() if raw else DEFAULT_CONVERSATION


async def start_conversation(deps: Deps, identity: str) -> str:
    """Start a new, empty conversation and make it the identity's current one."""
    conversation_id = new_conversation_id()
    await deps.redis.set(_current_key(deps, identity), conversation_id, ex=HISTORY_TTL_S)
    return conversation_id
