"""Model-written answers cached in Redis for five minutes.

Keyed by (question intent, project, tools, data versions, models): the same question shape
over the same data gets the same answer without paying for it again; new data is a new key.
Best-effort: without Redis every answer is a miss and nothing is stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from agent.rules import Plan
from chainlens import best_effort
from chainlens.deps import Deps
from tools.results import ToolResult

ANSWER_TTL_S = 300


class CachedAnswer(BaseModel):
    body: str  # header + model text, checked; the footer is rendered fresh (ages change)
    model: str
    cited: list[tuple[str, str]] = []  # (article url, publisher) listed in the footer


def answer_key(
    deps: Deps,
    *,
    plan: Plan,
    project_id: str,
    results: Mapping[str, ToolResult],
    models: Sequence[str],
    language: str = "en",
) -> str:
    versions = sorted((tool, r.as_of.isoformat(), r.stale) for tool, r in results.items())
    parts: list[object] = [plan.intent, project_id, list(plan.tools), versions, list(models)]
    if language != "en":
        parts.append(language)  # an answer in another language is another answer
    return material_key(deps, parts)


def material_key(deps: Deps, parts: Sequence[object]) -> str:
    """The cache key of what a model writes from `parts` (JSON-serialisable: the intent, the
    data's versions, the models and the language)."""
    material = json.dumps(list(parts), default=str)
    return deps.keys("agent", "answer", hashlib.sha256(material.encode()).hexdigest()[:32])


async def get_answer(deps: Deps, key: str) -> CachedAnswer | None:
    raw = await best_effort.attempt(
        deps.redis, "answer cache read", lambda: deps.redis.get(key), None
    )
    if raw is None:
        return None
    try:
        return CachedAnswer.model_validate_json(raw)
    except ValueError:  # an entry from an older version is a miss, not an error
        return None


async def put_answer(deps: Deps, key: str, answer: CachedAnswer) -> None:
    raw = answer.model_dump_json()
    await best_effort.attempt(
        deps.redis, "answer cache write", lambda: deps.redis.set(key, raw, ex=ANSWER_TTL_S), None
    )
