"""Model-written answers cached in Redis for five minutes.

Keyed by (question intent, project, tools, data versions, models): the same question shape
over the same data gets the same answer without paying for it again; new data is a new key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from agent.rules import Plan
from chainlens.deps import Deps
from tools.results import ToolResult

ANSWER_TTL_S = 300


class CachedAnswer(BaseModel):
    body: str  # header + model text, checked; the footer is rendered fresh (ages change)
    model: str


def answer_key(deps: Deps, *, plan: Plan, project_id: str, results: Mapping[str, ToolResult],
               models: Sequence[str], language: str = "en") -> str:
    versions = sorted((tool, r.as_of.isoformat(), r.stale) for tool, r in results.items())
    parts: list[object] = [plan.intent, project_id, list(plan.tools), versions, list(models)]
    if language != "en":
        parts.append(language)  # an answer in another language is another answer
    material = json.dumps(parts)
    return deps.keys("agent", "answer", hashlib.sha256(material.encode()).hexdigest()[:32])


async def get_answer(deps: Deps, key: str) -> CachedAnswer | None:
    raw = await deps.redis.get(key)
    return CachedAnswer.model_validate_json(raw) if raw is not None else None


async def put_answer(deps: Deps, key: str, answer: CachedAnswer) -> None:
    await deps.redis.set(key, answer.model_dump_json(), ex=ANSWER_TTL_S)
