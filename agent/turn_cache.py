"""Whole answers to repeated questions, replayed without running the graph.

When an answer was built entirely from hot-cache data (every tool result is a Redis entry),
the turn is stored under the question's key together with the digest of each entry it used.
The next identical question runs one Lua function that checks every digest against the entry
in Redis now: all equal means the same question over the same data, so the stored answer is
replayed (plan, tool progress, text, final) and the conversation remembers the project. One
changed, refreshed or expired entry makes it a miss and the graph runs.

Every key the function touches is declared: the turn, the conversation's memory and the
hot-cache entries (which the process learns from the turn the first time it reads it; until
then the function returns the inputs to declare instead of reading them). On a standalone
Redis the function runs inside the quota script (`billing.quota_store.Rider`): quota and
replay are one round trip, and a refused request never reads the turn. On a Redis Cluster
the quota keys ({quota}), the turn, the project's entries ({<project id>}) and the
conversation are in different slots, so consume, read, check and remember are separate
calls there (each atomic in its own slot; a replay checked against entries that change a
moment later is the same answer a moment old).

Not stored: answers whose project came from the conversation ("what about its team?"),
answers with no tools (greetings, suggestions), answers using stale or failed results.

Limits: a resolution change from a coin-index refresh reaches an already-stored question
within `TURN_TTL_S`.
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
from redis.crc import key_slot
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
from billing.quota_store import Rider
from chainlens import best_effort
from chainlens.deps import Deps, is_cluster
from chainlens.i18n import Language, localizer
from tools import cache

log = logging.getLogger(__name__)

TURN_TTL_S = 300

# A Lua function (also run inside the quota script: `billing.quota_store.Rider`), so every
# key it touches is declared. KEYS[1]: the turn; KEYS[2]: the conversation's memory key when
# ARGV[1] == '1'; then the hot-cache entries the caller already knows the turn was built from.
# ARGV[2]: the memory TTL; ARGV[3]: the id of the turn this process holds parsed ('' for none),
# so an unchanged turn is not resent.
# Returns {0}: a miss (or an input changed: the turn is dropped);
#         {1, id, memory, turn, inputs}: every input checked and unchanged (memory set if
#         declared); turn and inputs are nil when the id is the one the caller holds;
#         {2, id, memory, turn, inputs}: an input was not declared, so nothing was
#         checked: the caller declares them and asks again (or, on a cluster, checks them
#         itself in their own slot). The turn and memory keys are untouched then.
REPLAY_FUNCTION = """
local function replay(KEYS, ARGV)
  local found = redis.call('HMGET', KEYS[1], 'id', 'inputs', 'memory')
  if not found[1] or not found[2] then return {0} end
  local first = 2
  if ARGV[1] == '1' then first = 3 end
  local declared = {}
  for i = first, #KEYS do declared[KEYS[i]] = true end
  local pending = {}
  for key, digest in string.gmatch(found[2], '([^\\n]+)\\n(%x+)\\n') do
    if not declared[key] then
      local body = false
      if found[1] ~= ARGV[3] then body = redis.call('HGET', KEYS[1], 'turn') end
      return {2, found[1], found[3] or '', body, found[2]}
    end
    pending[#pending + 1] = {key, digest}
  end
  for _, p in ipairs(pending) do
    local entry = redis.call('GET', p[1])
    if (not entry) or redis.sha1hex(entry) ~= p[2] then
      redis.call('DEL', KEYS[1])
      return {0}
    end
  end
  local memory = found[3] or ''
  if ARGV[1] == '1' then redis.call('SET', KEYS[2], memory, 'EX', tonumber(ARGV[2])) end
  if found[1] == ARGV[3] then return {1, found[1], memory, false, false} end
  return {1, found[1], memory, redis.call('HGET', KEYS[1], 'turn'), found[2]}
end
"""
_REPLAY = REPLAY_FUNCTION + "return replay(KEYS, ARGV)\n"
_REPLAY_SHA = hashlib.sha1(_REPLAY.encode(), usedforsecurity=False).hexdigest()
# Cluster: the inputs (one project's hot-cache entries, one slot) checked against their digests.
_CHECK = """
for i, key in ipairs(KEYS) do
  local entry = redis.call('GET', key)
  if (not entry) or redis.sha1hex(entry) ~= ARGV[i] then return 0 end
end
return 1
"""
_CHECK_SHA = hashlib.sha1(_CHECK.encode(), usedforsecurity=False).hexdigest()
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
    inputs: tuple[tuple[str, str], ...]  # (hot-cache key, digest) the turn was built from

    @classmethod
    def of(cls, turn_id: str, stored: StoredTurn, inputs: str) -> _Parsed:
        final = stored.final
        lead: list[AgentEvent] = [
            PlanEvent(
                project=final.project,
                suggestions=final.suggestions,
                plan=final.plan,
                language=final.language,
            )
        ]
        for tool in final.plan.tools:
            result = final.results.get(tool)
            lead.append(ToolStartedEvent(tool=tool))
            lead.append(
                ToolFinishedEvent(
                    tool=tool,
                    ok=True,
                    cache="hot",
                    elapsed_ms=0.0,
                    stale=bool(result and result.stale),
                    missing=dict(result.missing) if result else {},
                )
            )
        chunks = _chunks(stored.body) or [""]
        lead.extend(TextEvent(text=chunk) for chunk in chunks[:-1])
        return cls(turn_id, stored, tuple(lead), chunks[-1], _inputs(inputs))


def _inputs(text: str) -> tuple[tuple[str, str], ...]:
    """The (key, digest) pairs of a stored turn's `inputs` field."""
    lines = text.split("\n")
    return tuple(zip(lines[0:-1:2], lines[1::2], strict=False))


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


def turn_key(deps: Deps, question: str, tools: Sequence[str] | None, language: str = "en") -> str:
    """The key of a question: its words (case and spacing ignored), forced tools, models and
    the language it is answered in."""
    models = [str(d["model_name"]) for d in deps.llm.model_list] if deps.llm is not None else []
    words = _SPACE.sub(" ", question).strip().lower()
    parts: list[object] = [words, sorted(tools) if tools else None, models]
    if language != "en":
        parts.append(language)  # English keys stay as they were
    material = json.dumps(parts)
    return deps.keys("agent", "turn", hashlib.sha256(material.encode()).hexdigest()[:32])


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a replay reads: the turn, the conversation's memory and the turn's known inputs."""

    key: str
    conversation_id: str | None
    keys: tuple[str, ...]  # KEYS of the replay function
    args: tuple[EncodableT, ...]  # its ARGV

    def rider(self, language: Language) -> ReplayRider:
        """The replay as a rider of the quota script (one round trip for both)."""
        return ReplayRider(REPLAY_FUNCTION, "replay", self.keys, self.args, language)


@dataclass(frozen=True, slots=True)
class ReplayRider(Rider):
    """The replay riding in the quota script, with the language its turn key was built for
    (so the answer does not detect it again)."""

    language: Language


def lookup(deps: Deps, key: str, *, conversation_id: str | None) -> Lookup:
    """The replay of `key`. The memory key is declared only where it can share the script
    with the turn (a standalone Redis); on a cluster it is set by its own command."""
    known = _parsed.get(key)
    memory = memory_key(deps, conversation_id) if conversation_id else ""
    with_memory = bool(memory) and not is_cluster(deps.redis)
    keys = [key, *([memory] if with_memory else [])]
    if known is not None and not is_cluster(deps.redis):
        keys += [input_key for input_key, _ in known.inputs]
    args = ("1" if with_memory else "0", CONVERSATION_TTL_S, known.turn_id if known else "")
    return Lookup(key, conversation_id, tuple(keys), args)


async def replay(
    deps: Deps,
    key: str,
    *,
    conversation_id: str | None,
    started: float,
    reply: list[Any] | None = None,
) -> Replay | None:
    """The stored turn for `key` if every input is unchanged (remembering its project for the
    conversation); None on a miss or when Redis cannot answer. `started` is the answer's
    `time.perf_counter()` start, for its latency. `reply` is the replay function's answer
    when it already ran (inside the quota script, `billing.quota.consume_request`).

    A standalone Redis answers in one call when this process already knows the turn's inputs
    (it stored or replayed the turn before), else in two (the first call returns the inputs
    to declare). On a Redis Cluster the turn, its inputs (the project's slot) and the
    conversation are in different slots: read, check and remember are three calls."""
    found = await _run(deps, lookup(deps, key, conversation_id=conversation_id), reply)
    if found is None:
        return None
    return _replay(deps, key, found, conversation_id, started)


async def _run(deps: Deps, call: Lookup, reply: list[Any] | None) -> _Parsed | None:
    if reply is None:
        reply = await _evalsha(deps, _REPLAY_SHA, _REPLAY, call.keys, call.args)
        if reply is None:
            return None
    code = int(reply[0])
    if code == 0:
        return None
    turn_id, memory, body, inputs = reply[1].decode(), reply[2], reply[3], reply[4]
    known = _parsed.get(call.key)
    if body is not None:  # a turn this process has not parsed yet (or a newer one)
        try:
            known = _Parsed.of(turn_id, StoredTurn.model_validate_json(body), inputs.decode())
        except ValueError:
            log.warning("dropping unreadable stored turn %s", call.key)
            return None
        _parsed[call.key] = known
        while len(_parsed) > _PARSED_MAX:
            _parsed.popitem(last=False)
    if known is None or known.turn_id != turn_id:
        return None  # cannot happen: the script sends the turn whenever the ids differ
    if code == 1:
        return known
    # code 2: the inputs were not declared (a turn new to this process, or a cluster).
    if not is_cluster(deps.redis):
        again = await _evalsha(deps, _REPLAY_SHA, _REPLAY, *_declared(call, known))
        return known if again is not None and int(again[0]) == 1 else None
    return await _check_on_cluster(deps, call, known, memory)


def _declared(call: Lookup, known: _Parsed) -> tuple[tuple[str, ...], tuple[EncodableT, ...]]:
    base = call.keys[:2] if call.args[0] == "1" else call.keys[:1]
    return (*base, *(k for k, _ in known.inputs)), (call.args[0], call.args[1], known.turn_id)


async def _check_on_cluster(
    deps: Deps, call: Lookup, known: _Parsed, memory: bytes
) -> _Parsed | None:
    """Check the inputs in their own slot(s), then remember the project (own slot too)."""
    by_slot: dict[int, list[tuple[str, str]]] = {}
    for input_key, digest in known.inputs:
        by_slot.setdefault(key_slot(input_key.encode()), []).append((input_key, digest))
    for pairs in by_slot.values():
        same = await _evalsha(
            deps, _CHECK_SHA, _CHECK, tuple(k for k, _ in pairs), tuple(d for _, d in pairs)
        )
        if same is None or not int(same):
            if same is not None:
                await best_effort.attempt(
                    deps.redis, "turn cache drop", lambda: deps.redis.delete(call.key), None
                )
            return None
    if call.conversation_id:
        memory_at = memory_key(deps, call.conversation_id)
        await best_effort.attempt(
            deps.redis,
            "conversation write",
            lambda: deps.redis.set(memory_at, memory, ex=CONVERSATION_TTL_S),
            None,
        )
    return known


async def _evalsha(
    deps: Deps, sha: str, source: str, keys: Sequence[str], args: Sequence[EncodableT]
) -> Any:
    async def run() -> Any:
        try:
            return await deps.redis.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            return await deps.redis.eval(source, len(keys), *keys, *args)

    return await best_effort.attempt(deps.redis, "turn cache replay", run, None)


def _replay(
    deps: Deps, key: str, known: _Parsed, conversation_id: str | None, started: float
) -> Replay:
    stored = known.stored
    elapsed = max(0.0, time.time() - stored.stored_at)
    sources = [
        s.model_copy(update={"age_seconds": round(s.age_seconds + elapsed, 1)})
        for s in stored.final.sources
    ]
    footer = render_footer(sources, localizer(stored.final.language))
    final = stored.final.model_copy(
        update={
            "answer": stored.body + footer,
            "sources": sources,
            "cache_hit": True,
            "usage": Usage(model=stored.final.usage.model),
            "conversation_id": conversation_id,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
    )
    return Replay(known.lead, known.tail + footer, final)


def storable(final: FinalEvent, runs: Mapping[str, ToolRun], resolved_by: str) -> bool:
    """Whether the turn can be replayed later: see the module docstring."""
    tools = final.plan.tools
    return (
        final.project is not None
        and bool(tools)
        and resolved_by != "context"
        and all(
            tool in runs and runs[tool].l1_digest and not runs[tool].result.stale for tool in tools
        )
        and final.answer.endswith(render_footer(final.sources, localizer(final.language)))
    )


async def store(deps: Deps, key: str, final: FinalEvent, runs: Mapping[str, ToolRun]) -> None:
    """Keep `final` for replay, bound to the digests of the hot-cache entries it used."""
    assert final.project is not None
    footer = render_footer(final.sources, localizer(final.language))
    turn = StoredTurn(
        final=final.model_copy(update={"conversation_id": None, "latency_ms": 0.0}),
        body=final.answer[: len(final.answer) - len(footer)],
        stored_at=time.time(),
    )
    inputs = "".join(
        f"{cache.l1_key(deps, tool, final.project.id)}\n{runs[tool].l1_digest}\n"
        for tool in final.plan.tools
    )
    turn_id = uuid.uuid4().hex
    mapping: dict[FieldT, EncodableT] = {
        "id": turn_id,
        "inputs": inputs,
        "turn": turn.model_dump_json(),
        "memory": memory_value(final.project),
    }

    async def run() -> bool:
        async with deps.redis.pipeline(transaction=True) as pipe:  # one key: one slot
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, TURN_TTL_S)
            await pipe.execute()
        return True

    if await best_effort.attempt(deps.redis, "turn cache store", run, False):
        # This process knows the turn and its inputs: its next replay is one call.
        _parsed[key] = _Parsed.of(turn_id, turn, inputs)
        while len(_parsed) > _PARSED_MAX:
            _parsed.popitem(last=False)
