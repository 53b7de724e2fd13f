"""Compose the answer: the model through the Router (streamed, checked line by line), or the
deterministic writer when there is no model, every model failed, or the cost cap is reached.

Comparisons and market answers keep their figures deterministic (the table, the verdicts,
the market figures); with a model configured, the model writes one short paragraph around
them, in the turn's language, checked by the same guard (every figure must be one the
deterministic part shows; no stance, no links). Without a model, or when it fails, the
answer is the deterministic one.

If the model fails after text has been shown, the stream gets one `error` event and the
final event carries the deterministic answer; no text is emitted twice.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.answer_cache import (
    CachedAnswer,
    answer_key,
    get_answer,
    material_key,
    put_answer,
)
from agent.assess import Assessment, assess
from agent.compare_writer import comparison_parts, write_comparison_problem
from agent.events import AgentEvent, ErrorEvent, FinalEvent, PlanInfo, TextEvent, Usage
from agent.facts import Source, numeric_fields, price_history_of, sources_of
from agent.guard import AnswerGuard, allowed_values, guard_for
from agent.market_writer import market_body, market_sources, write_market_answer
from agent.prompts import chat_messages, data_block, data_texts, prose_messages, writer_messages
from agent.rules import Plan
from agent.state import ToolRun
from agent.writer import (
    render_footer,
    render_header,
    render_verdict,
    stance_marker,
    write_answer,
    write_no_data_reply,
    write_no_project_reply,
)
from chainlens.deps import Deps
from chainlens.i18n import Language, Localizer, localizer
from tools.market import MarketData
from tools.resolve import Comparison
from tools.results import Project, Resolution, ToolResult, as_any_results

log = logging.getLogger(__name__)

Emit = Callable[[AgentEvent], None]
MIN_ANSWER_TOKENS = 150  # below this the model cannot write the sections; use the writer
CHARS_PER_TOKEN = 4  # rough prompt-size estimate, no tokenizer download needed


class ModelUnavailable(Exception):
    """No model could write this answer (all failed, or the cost cap leaves no room)."""


@dataclass
class _Written:
    body: str
    usage: Usage
    emitted: bool = False  # some of the model's text has reached the stream
    lines: list[str] = field(default_factory=list)
    cited: dict[str, str] = field(default_factory=dict)  # third-party article -> publisher


async def compose_answer(
    deps: Deps,
    *,
    question: str,
    resolution: Resolution,
    plan: Plan,
    runs: Mapping[str, ToolRun],
    plan_usage: Usage,
    emit: Emit,
    conversation_id: str | None = None,
    language: Language = "en",
    market: MarketData | None = None,
    comparison: Comparison | None = None,
) -> FinalEvent:
    """Write the answer in `language`, emitting text chunks, and return the final event."""
    loc = localizer(language)
    info = PlanInfo.of(plan)
    project = resolution.project
    if project is None and plan.intent == "market" and market is not None:
        # The whole market: the figures by rules, a model's paragraph after them if any.
        if not market.has_data:
            reply = write_market_answer(market, plan.window, loc)
            _emit_deterministic(emit, reply)
            return FinalEvent(
                answer=reply,
                project=None,
                plan=info,
                usage=plan_usage,
                sources=market_sources(market),
                conversation_id=conversation_id,
                substantive=False,
                language=language,
                market=market,
            )
        sources = market_sources(market)
        body = market_body(market, plan.window, loc)
        composed = await _with_prose(
            deps,
            question=question,
            kind="market",
            head=body,
            tail=render_footer(sources, loc),
            data=body,
            versions=[market.kind, plan.window, market.fetched_at.isoformat(), market.stale],
            plan_usage=plan_usage,
            loc=loc,
            emit=emit,
        )
        return FinalEvent(
            answer=composed.answer,
            project=None,
            plan=info,
            usage=composed.usage,
            sources=sources,
            conversation_id=conversation_id,
            cache_hit=market.cache == "hot"
            and (composed.writer == "deterministic" or composed.cached),
            writer=composed.writer,
            language=language,
            market=market,
        )
    if comparison is not None:
        return await _compose_comparison(
            deps,
            question,
            comparison,
            plan,
            info,
            runs,
            plan_usage,
            emit,
            conversation_id,
            language,
        )
    if project is None:
        reply = write_no_project_reply(question, resolution.suggestions, loc)
        emit(TextEvent(text=reply))
        return FinalEvent(
            answer=reply,
            project=None,
            suggestions=resolution.suggestions,
            plan=info,
            usage=plan_usage,
            conversation_id=conversation_id,
            language=language,
        )
    results: dict[str, ToolResult] = {t: runs[t].result for t in plan.tools if t in runs}
    if plan.tools and not any(runs[t].ok for t in plan.tools if t in runs):
        reply = write_no_data_reply(project, results, loc)
        emit(TextEvent(text=reply))
        return FinalEvent(
            answer=reply,
            project=project,
            suggestions=resolution.suggestions,
            plan=info,
            results=as_any_results(results),
            usage=plan_usage,
            conversation_id=conversation_id,
            substantive=False,
            language=language,
        )
    verdict = assess(results)
    sources = sources_of(results)
    fallback_answer, report = write_answer(project, results, verdict, sources, loc)
    base: dict[str, Any] = dict(
        project=project,
        suggestions=resolution.suggestions,
        plan=info,
        results=results,
        sources=sources,
        price_history=price_history_of(results),
        report=report,
        conversation_id=conversation_id,
        language=language,
    )
    data_cached = bool(runs) and all(r.cache in ("hot", "warm") for r in runs.values())

    if deps.llm is None:
        _emit_deterministic(emit, fallback_answer)
        return FinalEvent(answer=fallback_answer, usage=plan_usage, cache_hit=data_cached, **base)

    key = answer_key(
        deps,
        plan=plan,
        project_id=project.id,
        results=results,
        models=[d["model_name"] for d in deps.llm.model_list],
        language=language,
    )
    cached = await get_answer(deps, key)
    if cached is not None:
        base["sources"] = cited_sources = [*sources, *_cited(dict(cached.cited), sources)]
        footer = render_footer(cited_sources, loc)
        emit(TextEvent(text=cached.body))
        emit(TextEvent(text=footer))
        usage = plan_usage.plus(Usage(model=cached.model))
        return FinalEvent(
            answer=cached.body + footer, usage=usage, cache_hit=True, writer="llm", **base
        )

    written = _Written(body="", usage=Usage())
    try:
        await _write_with_model(
            deps,
            written,
            question=question,
            project=project,
            results=results,
            verdict=verdict,
            budget_usd=deps.settings.llm_max_cost_usd - plan_usage.cost_usd,
            emit=emit,
            loc=loc,
        )
    except Exception as exc:  # noqa: BLE001 - every provider/stream error: the writer takes over
        usage = plan_usage.plus(written.usage)
        usage = usage.model_copy(update={"model": "deterministic"})
        if not written.emitted:
            log.warning(
                "model unavailable (%s: %s); deterministic answer",
                type(exc).__name__,
                str(exc)[:200],
            )
            _emit_deterministic(emit, fallback_answer)
            return FinalEvent(answer=fallback_answer, usage=usage, **base)
        log.warning(
            "model failed mid-answer (%s); ending with the deterministic answer", type(exc).__name__
        )
        emit(
            ErrorEvent(
                code="llm_failed",
                message=loc._(
                    "The language model stopped mid-answer; here is the "
                    "answer written from the data by rules instead."
                ),
            )
        )
        return FinalEvent(answer=fallback_answer, usage=usage, **base)

    # An article the answer cites is linked here, by its publisher, not in the text.
    base["sources"] = cited_sources = [*sources, *_cited(written.cited, sources)]
    footer = render_footer(cited_sources, loc)
    emit(TextEvent(text=footer))
    await put_answer(
        deps,
        key,
        CachedAnswer(
            body=written.body, model=written.usage.model, cited=list(written.cited.items())
        ),
    )
    return FinalEvent(
        answer=written.body + footer, usage=plan_usage.plus(written.usage), writer="llm", **base
    )


async def _compose_comparison(
    deps: Deps,
    question: str,
    comparison: Comparison,
    plan: Plan,
    info: PlanInfo,
    runs: Mapping[str, ToolRun],
    plan_usage: Usage,
    emit: Emit,
    conversation_id: str | None,
    language: Language,
) -> FinalEvent:
    """A comparison's table and verdicts are written from the data by rules (every figure is
    the tools'); a model, when configured, adds a paragraph between them."""
    loc = localizer(language)
    if not comparison.ok:
        reply = write_comparison_problem(comparison, loc)
        emit(TextEvent(text=reply))
        return FinalEvent(
            answer=reply,
            project=None,
            plan=info,
            usage=plan_usage,
            suggestions=[p for u in comparison.unresolved for p in u.suggestions],
            conversation_id=conversation_id,
            substantive=False,
            language=language,
        )
    projects = comparison.projects
    results: dict[str, dict[str, ToolResult]] = {
        p.id: {t: runs[f"{p.id}:{t}"].result for t in plan.tools if f"{p.id}:{t}" in runs}
        for p in projects
    }
    ok: dict[str, dict[str, bool]] = {
        p.id: {t: runs[f"{p.id}:{t}"].ok for t in plan.tools if f"{p.id}:{t}" in runs}
        for p in projects
    }
    base: dict[str, Any] = {
        "project": projects[0],
        "projects": list(projects),
        "plan": info,
        "conversation_id": conversation_id,
        "language": language,
        "compared": results,
        "results": dict(results[projects[0].id]),
        "price_history": price_history_of(results[projects[0].id]),
        "price_histories": {p.id: price_history_of(results[p.id]) for p in projects},
    }
    if not any(any(v.values()) for v in ok.values()):
        names = ", ".join(p.display for p in projects)
        reply = (
            loc._(
                "I couldn't get any data for {project} right now{why}. This question was "
                "not charged; please try again in a few minutes."
            ).format(project=names, why="")
            + "\n"
        )
        emit(TextEvent(text=reply))
        return FinalEvent(answer=reply, substantive=False, usage=plan_usage, **base)
    table, verdicts, footer, sources = comparison_parts(projects, plan.tools, results, ok, loc)
    versions = sorted((key, r.result.as_of.isoformat(), r.result.stale) for key, r in runs.items())
    written = await _with_prose(
        deps,
        question=question,
        kind="compare",
        head=table,
        tail=verdicts + footer,
        data=table + "\n" + verdicts,
        versions=versions,
        plan_usage=plan_usage,
        loc=loc,
        emit=emit,
    )
    cached = bool(runs) and all(r.cache in ("hot", "warm") for r in runs.values())
    return FinalEvent(
        answer=written.answer,
        sources=sources,
        usage=written.usage,
        writer=written.writer,
        cache_hit=cached and (written.writer == "deterministic" or written.cached),
        **base,
    )


@dataclass
class _WithProse:
    answer: str
    usage: Usage
    writer: Literal["llm", "deterministic"] = "deterministic"
    cached: bool = False  # the model's paragraph came from the answer cache


async def _with_prose(
    deps: Deps,
    *,
    question: str,
    kind: Literal["compare", "market"],
    head: str,
    tail: str,
    data: str,
    versions: Sequence[object],
    plan_usage: Usage,
    loc: Localizer,
    emit: Emit,
) -> _WithProse:
    """`head` + a model's paragraph + `tail`, streamed in that order; `head` + `tail` (the
    deterministic answer) without a model or when it fails. The paragraph is written from
    `data` only and checked by the guard: a figure `data` does not show is withheld, links
    are dropped, and so is any line that takes a stance."""
    fallback = head + tail
    if deps.llm is None:
        _emit_deterministic(emit, fallback)
        return _WithProse(fallback, plan_usage)
    key = material_key(
        deps,
        [
            kind,
            list(versions),
            question_shape(question),
            loc.language,
            [d["model_name"] for d in deps.llm.model_list],
        ],
    )
    _emit_deterministic(emit, head)  # the figures show at once; the paragraph follows
    before = "" if head.endswith("\n\n") else "\n"
    after = "" if tail.startswith("\n") else "\n"
    cached = await get_answer(deps, key)
    if cached is not None:
        prose = before + cached.body + after
        emit(TextEvent(text=prose))
        _emit_deterministic(emit, tail)
        return _WithProse(
            head + prose + tail, plan_usage.plus(Usage(model=cached.model)), "llm", cached=True
        )
    written = _Written(body="", usage=Usage())
    try:
        await _write_prose(
            deps,
            written,
            question=question,
            kind=kind,
            data=data,
            loc=loc,
            budget_usd=deps.settings.llm_max_cost_usd - plan_usage.cost_usd,
            emit=emit,
            before=before,
        )
    except Exception as exc:  # noqa: BLE001 - any provider/stream error: the rules' answer stands
        usage = plan_usage.plus(written.usage).model_copy(update={"model": "deterministic"})
        if not written.emitted:
            log.warning(
                "model unavailable for the %s paragraph (%s: %s)",
                kind,
                type(exc).__name__,
                str(exc)[:200],
            )
            _emit_deterministic(emit, tail)
            return _WithProse(fallback, usage)
        log.warning(
            "model failed mid-paragraph (%s); ending with the deterministic answer",
            type(exc).__name__,
        )
        emit(
            ErrorEvent(
                code="llm_failed",
                message=loc._(
                    "The language model stopped mid-answer; here is the "
                    "answer written from the data by rules instead."
                ),
            )
        )
        return _WithProse(fallback, usage)
    _emit_deterministic(emit, after + tail)
    await put_answer(
        deps, key, CachedAnswer(body=written.body[len(before) :], model=written.usage.model)
    )
    return _WithProse(head + written.body + after + tail, plan_usage.plus(written.usage), "llm")


def question_shape(question: str) -> str:
    """The question as the paragraph's cache sees it: case and spacing do not matter."""
    return " ".join(question.lower().split())


async def _write_prose(
    deps: Deps,
    written: _Written,
    *,
    question: str,
    kind: Literal["compare", "market"],
    data: str,
    loc: Localizer,
    budget_usd: float,
    emit: Emit,
    before: str,
) -> None:
    assert deps.llm is not None
    messages = prose_messages(question, data, kind, loc.language)
    max_tokens = _affordable_tokens(deps, messages, budget_usd)
    # No stance to hold to ("NO CALL": a line taking one is dropped), no links, and only the
    # figures the deterministic part shows.
    guard = AnswerGuard(
        allowed=allowed_values([], [data], language=loc.language),
        urls=[],
        stance="NO CALL",
        risk_score=None,
        language=loc.language,
    )
    await _stream_model(deps, written, messages, max_tokens, guard, before, emit)
    if not written.emitted or len(written.body.strip()) < 20:
        raise ModelUnavailable("the model returned no usable paragraph")
    _log_guard(guard)


def _cited(cited: Mapping[str, str], sources: list[Source]) -> list[Source]:
    """Sources-list entries for the third-party articles an answer cites (as old as their feed)."""
    listed = {s.url for s in sources}
    out: list[Source] = []
    for url, publisher in cited.items():
        if url in listed:
            continue
        feeds = [s for s in sources if s.source == publisher]
        out.append(
            Source(
                source=publisher,
                url=url,
                age_seconds=min((s.age_seconds for s in feeds), default=0.0),
                stale=any(s.stale for s in feeds),
            )
        )
    return out


def _emit_deterministic(emit: Emit, answer: str) -> None:
    # Paragraph by paragraph; the chunks concatenate to exactly `answer`.
    for part in re.split(r"(?<=\n\n)", answer):
        if part:
            emit(TextEvent(text=part))


async def _write_with_model(
    deps: Deps,
    written: _Written,
    *,
    question: str,
    project: Project,
    results: Mapping[str, ToolResult],
    verdict: Assessment,
    budget_usd: float,
    emit: Emit,
    loc: Localizer,
) -> None:
    verdict_line = render_verdict(verdict, loc)
    messages = writer_messages(
        question, data_block(project, results, verdict, verdict_line, loc), loc.language
    )
    max_tokens = _affordable_tokens(deps, messages, budget_usd)
    sources: list[Source] = sources_of(results)
    guard = guard_for(
        results,
        verdict,
        allowed=allowed_values(
            numeric_fields(results) + _verdict_numbers(verdict),
            [messages[1]["content"], *data_texts(sources, loc)],
            language=loc.language,
        ),
        language=loc.language,
    )
    written.cited = guard.cited  # filled as the guard meets third-party links
    header = render_header(project)
    await _stream_model(deps, written, messages, max_tokens, guard, header, emit)
    if not written.emitted or len(written.body) < len(header) + 40:
        raise ModelUnavailable("the model returned no usable text")
    if stance_marker(verdict.stance, loc) not in written.body:
        # The model left out the rules' verdict: it is part of every answer, so add it.
        extra = "\n" + verdict_line
        written.body += extra
        emit(TextEvent(text=extra))
    _log_guard(guard)


async def _stream_model(
    deps: Deps,
    written: _Written,
    messages: list[dict[str, str]],
    max_tokens: int,
    guard: AnswerGuard,
    header: str,
    emit: Emit,
) -> None:
    """Stream the model's text line by line through `guard`; the first kept line is emitted
    after `header`."""
    assert deps.llm is not None
    router = deps.llm
    models = len(router.model_list)
    # The Router's own timeouts bound each attempt; this bounds all of them together.
    async with asyncio.timeout(deps.settings.llm_timeout_s * (models + 1) + 5):
        response = await router.acompletion(
            model=str(router.model_list[0]["model_name"]),
            messages=chat_messages(messages),
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=max_tokens,
            temperature=0.2,
        )
        pending = ""
        try:
            async for chunk in response:
                _take_usage(written, chunk, router)
                pending += _delta_text(chunk)
                while "\n" in pending:
                    line, pending = pending.split("\n", 1)
                    _emit_line(written, guard, line, header, emit)
        finally:
            close = getattr(response, "aclose", None)
            if close is not None:
                await close()
        if pending:
            _emit_line(written, guard, pending, header, emit)
        hidden = getattr(response, "_hidden_params", None) or {}
        model = hidden.get("litellm_model_name") or written.usage.model
        written.usage = written.usage.model_copy(update={"model": str(model)})


def _log_guard(guard: AnswerGuard) -> None:
    if guard.withheld or guard.dropped_lines or guard.dropped_sentences:
        log.info(
            "guard withheld %d figures, dropped %d lines and %d sentences (%s)",
            guard.withheld,
            guard.dropped_lines,
            len(guard.dropped_sentences),
            ", ".join(sorted({reason for reason, _ in guard.dropped_sentences})),
        )


def _emit_line(written: _Written, guard: AnswerGuard, line: str, header: str, emit: Emit) -> None:
    checked = guard.check_line(line)
    if checked is None:
        return
    text = checked + "\n"
    if not written.emitted:
        if not checked.strip():
            return  # no leading blank lines
        text = header + text
        written.emitted = True
    written.body += text
    emit(TextEvent(text=text))


def _delta_text(chunk: Any) -> str:
    try:
        return chunk.choices[0].delta.content or ""
    except (AttributeError, IndexError):
        return ""


def _take_usage(written: _Written, chunk: Any, router: Any) -> None:
    usage = getattr(chunk, "usage", None)
    if not usage or not getattr(usage, "prompt_tokens", None):
        return
    tokens_in = int(usage.prompt_tokens or 0)
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    cost = getattr(usage, "cost", None)  # LiteLLM's response cost for this deployment
    model = str(getattr(chunk, "model", "") or "unknown")
    if cost is None:
        from agent.llm import cost_usd

        cost = cost_usd(model, tokens_in, tokens_out, router)
    written.usage = Usage(
        tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=float(cost), model=model
    )


def _verdict_numbers(verdict: Assessment) -> list[float]:
    return [
        v for v in (verdict.risk_score, verdict.quality, *verdict.scores.values()) if v is not None
    ]


def _affordable_tokens(deps: Deps, messages: list[dict[str, str]], budget_usd: float) -> int:
    """The output-token cap: the per-request cap, lowered so the answer fits the cost cap."""
    from agent.llm import max_price_per_token

    cap = deps.settings.llm_max_tokens
    assert deps.llm is not None
    price_in, price_out = max_price_per_token(deps.llm)
    prompt_tokens = sum(len(m["content"]) for m in messages) // CHARS_PER_TOKEN + 50
    left = budget_usd - prompt_tokens * price_in
    if price_out > 0:
        cap = min(cap, int(left / price_out)) if left > 0 else 0
    if cap < MIN_ANSWER_TOKENS:
        raise ModelUnavailable(f"cost cap: ${budget_usd:.4f} left allows {max(cap, 0)} tokens")
    return cap
