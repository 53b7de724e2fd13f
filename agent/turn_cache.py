"""Whole answers to repeated questions, replayed without running the graph.

When an answer was built entirely from hot-cache data (every tool result is a Redis entry),
the turn is stored under the question's key together with the digest of each entry it used.
The next identical question runs one Lua script that checks every digest against the entry
in Redis now: all equal means the same question over the same data, so the stored answer is
replayed (plan, tool progress, text, final) and the conversation remembers the project, in
one round trip. One changed, refreshed or expired entry makes it a miss and the graph runs.

Not stored: answers whose project came from the conversation ("what about its team?"),
answers with no tools (greetings, suggestions), answers using stale or failed results.

Limits: a resolution change from a coin-index refresh reaches an already-stored question
within `TURN_TTL_S`. The script reads the hot-cache keys named in the stored turn, which
standalone Redis allows (a Redis Cluster would need them passed as KEYS).
Without Redis every question is a miss and nothing is stored (`chainlens.best_effort`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, FieldT

from agent.events import (
    AgentEvent,
    FinalEvent,
    PlanEvent,
    TextEvent,
    ToolFinishedEvent,
    ToolStartedEvent,
    Usage,
)
from agent.memory import CONVERSATION_TTL_S, memory_key, memory_value
from agent.state import ToolRun
from agent.writer import render_footer
from chainlens import best_effort
from chainlens.deps import Deps
from chainlens.i18n import localizer
from tools import cache

log = logging.getLogger(__name__)

TURN_TTL_S = 300

# KEYS[1]: the turn. ARGV: conversation memory key ('' for none), its TTL, and the id of the
# turn this process already holds parsed ('' for none), so an unchanged turn is not resent.
_REPLAY = """
local inputs = redis.call('HGET', KEYS[1], 'inputs')
if not inputs then return false end
for key, digest in string.gmatch(inputs, '([^\\n]+)\\n(%x+)\\n') do
  local entry = redis.call('GET', key)
  if (not entry) or redis.sha1hex(entry) ~= digest then
    redis.call('DEL', KEYS[1])
    return false
  end
end
local found = redis.call('HMGET', KEYS[1], 'id', 'memory')
if ARGV[1] ~= '' then redis.call('SET', ARGV[1], found[2], 'EX', tonumber(ARGV[2])) end
if found[1] == ARGV[3] then return {found[1]} end
return {found[1], redis.call('HGET', KEYS[1], 'turn')}
"""
_REPLAY_SHA = hashlib.sha1(_REPLAY.encode(), usedforsecurity=False).hexdigest()
_PARSED_MAX = 256
# turn key -> parsed turn: parsing a stored turn costs more than the rest of a replay
_parsed: OrderedDict[str, _Parsed] = OrderedDict()
_SPACE = re.compile(r"\s+")


class StoredTurn(BaseModel):
    final: FinalEvent
    body: str  # the answer without its sources footer, which is re-rendered with current ages
    stored_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A stored turn as this process keeps it: the events before the text's last chunk are the
    same on every replay, so they are built once."""

    turn_id: str
    stored: StoredTurn
    lead: tuple[AgentEvent, ...]  # plan, tool progress, every text chunk but the last
    tail: str  # the body's last chunk, streamed with the re-rendered footer

    @classmethod
    def of(cls, turn_id: str, stored: StoredTurn) -> _Parsed:
        final = stored.final
        lead: list[AgentEvent] = [
            PlanEvent(project=final.project, suggestions=final.suggestions, plan=final.plan,
                      language=final.language)]
        for tool in final.plan.tools:
            result = final.results.get(tool)
            lead.append(ToolStartedEvent(tool=tool))
            lead.append(ToolFinishedEvent(tool=tool, ok=True, cache="hot", elapsed_ms=0.0,
                                          stale=bool(result and result.stale),
                                          missing=dict(result.missing) if result else {}))
        chunks = _chunks(stored.body) or [""]
        lead.extend(TextEvent(text=chunk) for chunk in chunks[:-1])
        return cls(turn_id, stored, tuple(lead), chunks[-1])


def _chunks(text: str) -> list[str]:
    """The text events of an answer: one per paragraph."""
    return [part for part in re.split(r"(?<=\n\n)", text) if part]


@dataclass(frozen=True, slots=True)
class Replay:
    """A stored turn, ready to be streamed as if the graph had produced it."""

    lead: tuple[AgentEvent, ...]  # shared by every replay of the turn: never mutated
    tail: str  # the body's last chunk and the current footer
    final: FinalEvent

    def events(self) -> Iterator[AgentEvent]:
        yield from self.lead
        for part in _chunks(self.tail):
            yield TextEvent(text=part)
        yield self.final


def turn_key(deps: Deps, question: str, tools: Sequence[str] | None,
             language: str = "en") -> str:
    """The key of a question: its words (case and spacing ignored), forced tools, models and
    the language it is answered in."""
    models = [str(d["model_name"]) for d in deps.llm.model_list] if deps.llm is not None else []
    words = _SPACE.sub(" ", question).strip().lower()
    parts: list[object] = [words, sorted(tools) if tools else None, models]
    if language != "en":
        parts.append(language)  # English keys stay as they were
    material = json.dumps(parts)
    return deps.keys("agent", "turn", hashlib.sha256(material.encode()).hexdigest()[:32])


async def replay(deps: Deps, key: str, *, conversation_id: str | None,
                 started: float) -> Replay | None:
    """The stored turn for `key` if every input is unchanged (remembering its project for the
    conversation); None on a miss or when Redis cannot answer. `started` is the answer's
    `time.perf_counter()` start, for its latency."""
    memory = memory_key(deps, conversation_id) if conversation_id else ""
    known = _parsed.get(key)
    args = (memory, CONVERSATION_TTL_S, known.turn_id if known else "")

    async def run() -> Any:
        try:
            return await deps.redis.evalsha(_REPLAY_SHA, 1, key, *args)
        except NoScriptError:
            return await deps.redis.eval(_REPLAY, 1, key, *args)

    found = await best_effort.attempt(deps.redis, "turn cache replay", run, None)
    if not found or found[0] is None:  # a miss (or an entry without an id: treat as a miss)
        return None
    turn_id = found[0].decode()
    if known is None or len(found) > 1:
        try:
            known = _Parsed.of(turn_id, StoredTurn.model_validate_json(found[1]))
        except ValueError:
            log.warning("dropping unreadable stored turn %s", key)
            return None
        _parsed[key] = known
        while len(_parsed) > _PARSED_MAX:
            _parsed.popitem(last=False)
    stored = known.stored
    elapsed = max(0.0, time.time() - stored.stored_at)
    sources = [s.model_copy(update={"age_seconds": round(s.age_seconds + elapsed, 1)})
               for s in stored.final.sources]
    footer = render_footer(sources, localizer(stored.final.language))
    final = stored.final.model_copy(update={
        "answer": stored.body + footer, "sources": sources, "cache_hit": True,
        "usage": Usage(model=stored.final.usage.model), "conversation_id": conversation_id,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1)})
    return Replay(known.lead, known.tail + footer, final)


def storable(final: FinalEvent, runs: Mapping[str, ToolRun], resolved_by: str) -> bool:
    """Whether the turn can be replayed later: see the module docstring."""
    tools = final.plan.tools
    return (final.project is not None and bool(tools) and resolved_by != "context"
            and all(tool in runs and runs[tool].l1_digest and not runs[tool].result.stale
                    for tool in tools)
            and final.answer.endswith(render_footer(final.sources, localizer(final.language))))


async def store(deps: Deps, key: str, final: FinalEvent, runs: Mapping[str, ToolRun]) -> None:
    """Keep `final` for replay, bound to the digests of the hot-cache entries it used."""
    assert final.project is not None
    footer = render_footer(final.sources, localizer(final.language))
    turn = StoredTurn(final=final.model_copy(update={"conversation_id": None, "latency_ms": 0.0}),
                      body=final.answer[: len(final.answer) - len(footer)], stored_at=time.time())
    inputs = "".join(f"{cache.l1_key(deps, tool, final.project.id)}\n{runs[tool].l1_digest}\n"
                     for tool in final.plan.tools)
    mapping: dict[FieldT, EncodableT] = {
        "id": uuid.uuid4().hex, "inputs": inputs, "turn": turn.model_dump_json(),
        "memory": memory_value(final.project)}

    async def run() -> None:
        async with deps.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, TURN_TTL_S)
            await pipe.execute()

    await best_effort.attempt(deps.redis, "turn cache store", run, None)

