"""The web chat channel: one JSON answer, or the same answer as Server-Sent Events.

SSE events: `quota`, `plan`, `tool` (started/finished), `text` (chunks), `final` (the whole
answer with sources and usage) and `error`. A client that disconnects cancels the work: the
response task is cancelled, which closes the agent's generator and its LLM call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from agent import MAX_QUESTION_CHARS
from agent.events import FinalEvent
from agent.language import detect_language
from billing.quota import QuotaDecision, quota_status
from chainlens.chat import (
    ChatTurn,
    MessageTooLong,
    answer_admitted,
    check_message,
    give_back_unanswered,
    replay_rider,
)
from chainlens.deps import Deps
from chainlens.i18n import N_, localizer
from tools.results import Project
from web.auth import (
    Caller,
    admit_web_request,
    current_caller,
    quota_ip,
    rate_limit_headers,
)
from web.errors import ApiError, ErrorResponse
from web.history import record_turn, scoped_conversation_id
from web.i18n import (
    accept_language,
    request_language,
    saved_language,
    set_turn_language,
)
from web.routes.charts import comparison_chart_url

log = logging.getLogger(__name__)
router = APIRouter(tags=["chat"])


class ChatRequest(BaseModel):
    message: str = Field(
        min_length=1, max_length=MAX_QUESTION_CHARS * 4, examples=["Research Uniswap"]
    )
    conversation_id: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9:_-]+$")
    context: dict[str, Any] | None = Field(
        default=None, description="Seed field; accepted for compatibility, not used."
    )
    tools: list[str] | None = Field(
        default=None, description="Seed field; the agent plans tools itself."
    )


class ChatUsage(BaseModel):
    tokens_used: int
    requests_remaining: int
    requests_limit: int
    cost_usd: float


class SourceOut(BaseModel):
    source: str
    url: str
    age_seconds: float | None = None


class ChatResponse(BaseModel):
    response: str
    usage: ChatUsage
    sources: list[SourceOut]
    conversation_id: str
    project: dict[str, Any] | None = None
    chart_url: str | None = None
    # a comparison's projects, in order (`project` is the first); empty otherwise
    projects: list[dict[str, Any]] = Field(default_factory=list)


class QuotaOut(BaseModel):
    tier: str
    limit: int
    remaining: int
    reset_at: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "message too long"},
    422: {"model": ErrorResponse, "description": "invalid request"},
    429: {"model": ErrorResponse, "description": "quota spent; see Retry-After"},
    503: {"model": ErrorResponse, "description": "quota store unavailable"},
}


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


def day_quota(decision: QuotaDecision) -> tuple[int, int, datetime]:
    """(remaining, limit, reset) of today's window, whichever window decided: a per-minute
    refusal says nothing about the day, which is what the widget and account page show."""
    reset = (
        datetime.fromtimestamp(decision.plan.day.end_epoch, UTC)
        if decision.plan is not None
        else decision.reset_at
    )
    return max(0, decision.day_limit - decision.day_used), decision.day_limit, reset


_TOO_LONG = N_(
    "Your message is {length} characters; the limit is {limit}. Please ask a shorter question."
)
_NO_ANSWER = N_("No answer could be built. Your request was refunded.")
_FAILED = N_("Something went wrong on our side. A request that delivered no answer is not charged.")


def _conversation_id(caller: Caller, body: ChatRequest) -> str:
    # Conversations are scoped to the caller: nobody can continue someone else's chat.
    return scoped_conversation_id(caller.identity, body.conversation_id)


async def _admitted(
    request: Request, caller: Caller, body: ChatRequest, response_headers: dict[str, str]
) -> tuple[ChatTurn, Any, QuotaDecision]:
    """Check the message, then consume one request; errors become API errors. The turn's
    language (the message's own, else the saved choice, else Accept-Language) is decided
    first, so a refusal is in it too."""
    saved, hint = saved_language(request), accept_language(request)
    language = detect_language(body.message, saved=saved, hint=hint)
    set_turn_language(request, language)
    try:
        check_message(body.message)
    except MessageTooLong as exc:
        message = (
            localizer(language)._(_TOO_LONG).format(length=exc.length, limit=MAX_QUESTION_CHARS)
        )
        raise ApiError(
            413,
            "message_too_long",
            message,
            details={"limit": MAX_QUESTION_CHARS, "length": exc.length},
        ) from None
    turn = ChatTurn(
        identity=caller.identity,
        channel="api" if caller.via == "api_key" else "web",
        text=body.message,
        conversation_id=_conversation_id(caller, body),
        client_ip=quota_ip(request, caller),
        saved_language=saved,
        language_hint=hint,
    )
    # The quota and a stored answer to the question: one Redis call (chainlens.chat).
    caller, decision = await admit_web_request(
        request, caller, rider=replay_rider(_deps(request), turn)
    )
    response_headers.update(rate_limit_headers(decision))
    return turn, caller.account, decision


def _chart_url(final: FinalEvent) -> str | None:
    """The chart under the answer: a comparison's projects overlaid (those with a price
    history, when at least two have one), else the project's own price chart."""
    if final.projects:
        drawn = [p.id for p in final.projects if len(final.price_histories.get(p.id, [])) >= 2]
        return comparison_chart_url(drawn, final.language) if len(drawn) >= 2 else None
    if final.project is not None and len(final.price_history) >= 2:
        return f"/api/chart/{final.project.id}.png"
    return None


def _project_out(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "symbol": project.symbol,
        "name": project.name,
        "display": project.display,
    }


def _final_response(
    final: FinalEvent, decision: QuotaDecision, conversation_id: str, refunded: bool
) -> ChatResponse:
    remaining = decision.remaining + (1 if refunded else 0)
    return ChatResponse(
        response=final.answer,
        usage=ChatUsage(
            tokens_used=final.usage.tokens_in + final.usage.tokens_out,
            requests_remaining=min(remaining, decision.limit),
            requests_limit=decision.limit,
            cost_usd=final.usage.cost_usd,
        ),
        sources=[
            SourceOut(source=s.source, url=s.url, age_seconds=s.age_seconds) for s in final.sources
        ],
        conversation_id=conversation_id.split(":")[-1],
        project=_project_out(final.project) if final.project else None,
        chart_url=_chart_url(final),
        projects=[_project_out(p) for p in final.projects],
    )


def _final_payload(
    final: FinalEvent, decision: QuotaDecision, conversation_id: str, refunded: bool
) -> dict[str, Any]:
    return _final_response(final, decision, conversation_id, refunded).model_dump()


@router.post("/api/chat/query", response_model=ChatResponse, responses=_ERRORS)
async def chat_query(
    body: ChatRequest,
    request: Request,
    response: Response,
    caller: Caller = Depends(current_caller),
) -> ChatResponse:
    """Answer one question as a single JSON document."""
    deps = _deps(request)
    headers: dict[str, str] = {}
    turn, account, decision = await _admitted(request, caller, body, headers)
    response.headers.update(headers)
    final: FinalEvent | None = None
    async with aclosing(answer_admitted(deps, turn, account, decision)) as events:
        async for event in events:
            if event.type == "final":
                final = event
    if final is None:
        raise ApiError(503, "answer_failed", _NO_ANSWER)
    # The model itself is returned: FastAPI accepts its own response model's instance without
    # validating it again and writes the JSON from pydantic's core (no intermediate dict).
    answer = _final_response(final, decision, turn.conversation_id or "", not final.plan.tools)
    if turn.channel == "web":  # the widget's transcript; API-key callers keep their own
        await record_turn(
            deps,
            identity=caller.identity,
            conversation_id=body.conversation_id,
            question=check_message(body.message),
            final=answer.model_dump(),
        )
    return answer


class DisconnectAwareStreamingResponse(StreamingResponse):
    """Stops the stream as soon as the client disconnects, not at the next write.

    Starlette only notices a gone client when a write fails (ASGI spec >= 2.4); an answer
    that is thinking writes nothing for seconds, so we listen for `http.disconnect` too.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async with anyio.create_task_group() as group:

            async def stream_then_stop() -> None:
                await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream_then_stop)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
        if self.background is not None:
            await self.background()


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


@dataclass(slots=True)
class _Answering:
    """Whether the chat service took the turn over (from then on it settles the charge)."""

    started: bool = False


async def _event_stream(
    deps: Deps,
    turn: ChatTurn,
    account: Any,
    decision: QuotaDecision,
    answering: _Answering,
    conversation: str | None,
    language: str,
) -> AsyncIterator[bytes]:
    yield _sse(
        "quota",
        {
            "tier": decision.tier,
            "limit": decision.limit,
            "remaining": decision.remaining,
            "reset_at": decision.reset_at.isoformat(),
        },
    )
    try:
        async with aclosing(answer_admitted(deps, turn, account, decision)) as events:
            answering.started = True  # the first step below enters its try/finally
            async for event in events:
                if event.type == "final" and turn.channel == "web":
                    # Kept before it is sent, so a reload right after the answer still shows it.
                    payload = _final_payload(
                        event, decision, turn.conversation_id or "", not event.plan.tools
                    )
                    await record_turn(
                        deps,
                        identity=turn.identity,
                        conversation_id=conversation,
                        question=check_message(turn.text),
                        final=payload,
                    )
                    yield _sse("final", payload)
                else:
                    yield _sse_event(event, decision, turn)
    except asyncio.CancelledError:
        log.info("chat stream cancelled: the client left")
        raise
    except Exception:
        log.exception("chat stream failed")
        yield _sse("error", {"code": "internal_error", "message": localizer(language)._(_FAILED)})


def _sse_event(event: Any, decision: QuotaDecision, turn: ChatTurn) -> bytes:
    if event.type == "plan":
        project = event.project
        return _sse(
            "plan",
            {
                "project": (
                    {
                        "id": project.id,
                        "symbol": project.symbol,
                        "name": project.name,
                        "display": project.display,
                    }
                    if project
                    else None
                ),
                "suggestions": [{"id": p.id, "display": p.display} for p in event.suggestions],
                "tools": list(event.plan.tools),
                "router": event.plan.router,
                "projects": [_project_out(p) for p in event.projects],
            },
        )
    if event.type == "tool_started":
        return _sse(
            "tool", {"tool": event.tool, "status": "started", "project_id": event.project_id}
        )
    if event.type == "tool_finished":
        return _sse(
            "tool",
            {
                "tool": event.tool,
                "status": "finished",
                "ok": event.ok,
                "cache": event.cache,
                "stale": event.stale,
                "partial": event.partial,
                "project_id": event.project_id,
            },
        )
    if event.type == "text":
        return _sse("text", {"chunk": event.text})
    if event.type == "error":
        return _sse("error", {"code": event.code, "message": event.message})
    return _sse(
        "final", _final_payload(event, decision, turn.conversation_id or "", not event.plan.tools)
    )


@router.post(
    "/api/chat/stream",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "SSE: quota, plan, tool, text, final, error",
        },
        **_ERRORS,
    },
)
async def chat_stream(
    body: ChatRequest, request: Request, caller: Caller = Depends(current_caller)
) -> StreamingResponse:
    """Answer one question as Server-Sent Events while it is being built."""
    deps = _deps(request)
    headers: dict[str, str] = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    turn, account, decision = await _admitted(request, caller, body, headers)
    answering = _Answering()

    async def settle_if_never_answered() -> None:
        # A client gone before the body started: the stream never ran, so nothing settled.
        if not answering.started:
            await give_back_unanswered(deps, turn, account, decision)

    return DisconnectAwareStreamingResponse(
        _event_stream(
            deps,
            turn,
            account,
            decision,
            answering,
            body.conversation_id,
            request_language(request),
        ),
        media_type="text/event-stream",
        headers=headers,
        background=BackgroundTask(settle_if_never_answered),
    )


@router.get("/api/chat/quota", response_model=QuotaOut)
async def chat_quota(request: Request, caller: Caller = Depends(current_caller)) -> QuotaOut:
    """Requests left today for the caller (what the widget shows)."""
    status = await quota_status(_deps(request), caller.account, client_ip=quota_ip(request, caller))
    remaining, limit, reset = day_quota(status)
    return QuotaOut(tier=status.tier, limit=limit, remaining=remaining, reset_at=reset.isoformat())
