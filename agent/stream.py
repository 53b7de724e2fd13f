"""The agent's one entry point: `answer_stream` yields typed events; `answer` returns the final.

Every channel (CLI, web SSE, bots, REST) consumes these. A fault anywhere ends the stream
cleanly: an `error` event if text had started, then a `final` event with an answer written
from whatever the tools returned — never a hang, never an empty answer.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from agent import turn_cache
from agent.assess import assess
from agent.context import DEFAULT_TOOL_TIMEOUT_S, AgentContext
from agent.events import AgentEvent, ErrorEvent, FinalEvent, PlanInfo, TextEvent, Usage
from agent.facts import price_history_of, sources_of
from agent.graph import build_graph
from agent.language import detect_language
from agent.rules import Plan
from agent.state import AgentState, ToolRun
from agent.writer import write_answer, write_no_project_reply
from billing.quota_store import Rider
from chainlens.deps import Deps
from chainlens.i18n import N_, Language, localizer
from tools.results import Resolution, ToolName, ToolResult, as_any_results

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
UNAVAILABLE = N_("Sorry, I couldn't look that up right now. Please try again in a minute.") + "\n"


@functools.cache
def agent_graph() -> Any:
    """The compiled graph, built once per process."""
    return build_graph()


def clean_question(text: str) -> str:
    """The user's message without control characters, capped at MAX_QUESTION_CHARS."""
    return _CONTROL.sub(" ", text).strip()[:MAX_QUESTION_CHARS]


async def answer_stream(
    deps: Deps,
    question: str,
    *,
    conversation_id: str | None = None,
    tools: Sequence[ToolName] | None = None,
    refresh: bool = False,
    tool_timeout_s: float | None = None,
    language: Language | None = None,
    saved_language: str | None = None,
    language_hint: str | None = None,
    ridden: tuple[Rider, list[Any]] | None = None,
) -> AsyncIterator[AgentEvent]:
    """Answer `question`, yielding plan, tool progress, text chunks and the final event.

    The answer's language is `language` when given; otherwise the question's own language,
    else `saved_language` (the user's choice), else `language_hint` (Telegram language_code,
    Discord locale, Accept-Language), else English (`agent.language.detect_language`).

    `ridden`: the turn cache's replay that already ran inside the quota script
    (`chainlens.chat.replay_rider`), used when it read this question's turn."""
    started = time.perf_counter()
    question = clean_question(question)
    language = language or detect_language(question, saved=saved_language, hint=language_hint)
    turn_key = None if refresh else turn_cache.turn_key(deps, question, tools, language)
    if turn_key is not None:
        reply = ridden[1] if ridden is not None and ridden[0].keys[0] == turn_key else None
        replayed = await turn_cache.replay(
            deps, turn_key, conversation_id=conversation_id, started=started, reply=reply
        )
        if replayed is not None:
            for event in replayed.events():
                yield event
            return
    timeouts = dict(DEFAULT_TOOL_TIMEOUT_S)
    if tool_timeout_s is not None:
        timeouts = dict.fromkeys(timeouts, tool_timeout_s)
    context = AgentContext(deps=deps, tool_timeout_s=timeouts, refresh=refresh)
    state: AgentState = {
        "question": question,
        "conversation_id": conversation_id,
        "forced_tools": list(tools) if tools else None,
        "language": language,
    }
    seen: dict[str, Any] = {"runs": {}}
    text_started = False
    final: FinalEvent | None = None
    completed = False
    try:
        async with aclosing(
            agent_graph().astream(state, context=context, stream_mode=["custom", "updates"])
        ) as parts:
            async for mode, chunk in parts:
                if mode == "custom":
                    text_started = text_started or isinstance(chunk, TextEvent)
                    yield chunk
                    continue
                for update in chunk.values():
                    for key, value in (update or {}).items():
                        if key == "runs":
                            seen["runs"].update(value)
                        else:
                            seen[key] = value
        final = seen.get("final")
        if final is None:
            raise RuntimeError("the graph finished without a final answer")
        completed = True
        resolution: Resolution | None = seen.get("resolution")
        if (
            turn_key is not None
            and resolution is not None
            and turn_cache.storable(final, seen["runs"], resolution.method)
        ):
            await turn_cache.store(deps, turn_key, final, seen["runs"])
    except Exception as exc:  # any fault: answer from what we have, and say so if text started
        log.exception("answer failed for %r", question[:80])
        final = rescue_answer(question, conversation_id, seen, language)
        if text_started:
            yield ErrorEvent(
                code="internal",
                message=localizer(language)
                ._(
                    "The answer was interrupted ({error}); here is the answer written from the "
                    "data by rules."
                )
                .format(error=type(exc).__name__),
            )
        else:
            yield TextEvent(text=final.answer)
        completed = True
    finally:
        if not completed:
            # Cancelled or closed early (the client left): stop the model call and the tools
            # now, instead of letting them run to the end for nobody.
            context.cancel_running()
    yield final.model_copy(update={"latency_ms": round((time.perf_counter() - started) * 1000, 1)})


def rescue_answer(
    question: str, conversation_id: str | None, seen: dict[str, Any], language: Language = "en"
) -> FinalEvent:
    """The deterministic answer from whatever the graph had produced before it failed."""
    loc = localizer(language)
    resolution: Resolution | None = seen.get("resolution")
    plan: Plan = seen.get("plan") or Plan()
    runs: dict[str, ToolRun] = seen.get("runs", {})
    info = PlanInfo.of(plan)
    usage: Usage = seen.get("plan_usage") or Usage()
    if resolution is None:
        return FinalEvent(
            answer=loc._(UNAVAILABLE.rstrip("\n")) + "\n",
            project=None,
            plan=info,
            usage=usage,
            conversation_id=conversation_id,
            language=language,
        )
    if resolution.project is None:
        return FinalEvent(
            answer=write_no_project_reply(question, resolution.suggestions, loc),
            project=None,
            suggestions=resolution.suggestions,
            plan=info,
            usage=usage,
            conversation_id=conversation_id,
            language=language,
        )
    # a comparison's runs are "<project id>:<tool>": the rescue answers about the first project
    prefix = resolution.project.id + ":"
    results: dict[str, ToolResult] = {
        key.removeprefix(prefix): run.result
        for key, run in runs.items()
        if ":" not in key or key.startswith(prefix)
    }
    sources = sources_of(results)
    verdict = assess(results)
    text, report = write_answer(resolution.project, results, verdict, sources, loc)
    return FinalEvent(
        answer=text,
        project=resolution.project,
        suggestions=resolution.suggestions,
        plan=info,
        results=as_any_results(results),
        sources=sources,
        usage=usage,
        price_history=price_history_of(results),
        report=report,
        conversation_id=conversation_id,
        language=language,
    )


async def answer(
    deps: Deps,
    question: str,
    *,
    conversation_id: str | None = None,
    tools: Sequence[ToolName] | None = None,
    refresh: bool = False,
    language: Language | None = None,
    saved_language: str | None = None,
    language_hint: str | None = None,
) -> FinalEvent:
    """Answer `question` without streaming: the final event (language as in answer_stream)."""
    final: FinalEvent | None = None
    async for event in answer_stream(
        deps,
        question,
        conversation_id=conversation_id,
        tools=tools,
        refresh=refresh,
        language=language,
        saved_language=saved_language,
        language_hint=language_hint,
    ):
        if isinstance(event, FinalEvent):
            final = event
    assert final is not None  # answer_stream always ends with a final event
    return final
