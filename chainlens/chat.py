"""The chat service: one question from any channel, answered under one account and quota.

Adapters (web, Telegram, Discord, CLI) turn a platform event into a `ChatTurn` and render
the events of `chat()`; they never touch billing tables or the agent directly.

Errors: `MessageTooLong` (before any quota is spent). A spent quota is not an exception: the
stream yields `QuotaRefused` and ends, so every channel can say it in its own words.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from agent import MAX_QUESTION_CHARS, AgentEvent, answer_stream
from billing.accounts import Account, account_for_identity
from billing.quota import QuotaDecision, consume_request, refund_request
from billing.usage import UsageRecord, record_usage
from chainlens.deps import Deps

log = logging.getLogger(__name__)

# C0 control characters except tab and newline: never meaningful in a question, and NUL
# cannot be stored by PostgreSQL.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

Channel = Literal["web", "api", "telegram", "discord", "cli"]


class MessageTooLong(ValueError):
    """The question is longer than the agent accepts."""

    def __init__(self, length: int) -> None:
        super().__init__(
            f"Your message is {length} characters; the limit is {MAX_QUESTION_CHARS}. "
            "Please ask a shorter question."
        )
        self.length = length


@dataclass(frozen=True, slots=True)
class ChatTurn:
    identity: str  # "telegram:123", "web:ann@example.com", "web-anon:…"
    channel: Channel
    text: str
    conversation_id: str | None = None
    # Anonymous web visitors are also limited per client IP, so clearing cookies does not
    # reset the quota.
    client_ip: str | None = None
    # What the channel knows about the user's language (agent/language.py decides the turn's):
    # their saved choice, and the platform's hint (Telegram language_code, Discord locale,
    # the browser's Accept-Language).
    saved_language: str | None = None
    language_hint: str | None = None


@dataclass(frozen=True, slots=True)
class QuotaGranted:
    type: Literal["quota"]
    account: Account
    decision: QuotaDecision


@dataclass(frozen=True, slots=True)
class QuotaRefused:
    type: Literal["refused"]
    account: Account
    decision: QuotaDecision

    @property
    def message(self) -> str:
        return self.decision.refusal_message()


ChatEvent = QuotaGranted | QuotaRefused | AgentEvent


async def admit(deps: Deps, turn: ChatTurn, *,
                account: Account | None = None) -> tuple[Account, QuotaDecision]:
    """Map the identity to its account (unless the caller already has it, as the web does
    right after authenticating) and consume one request from its quota."""
    if account is None:
        account = await account_for_identity(deps, turn.identity)
    decision = await consume_request(deps, account, client_ip=turn.client_ip)
    return account, decision


def check_message(text: str) -> str:
    """The question, cleaned and stripped; `MessageTooLong` past the agent's limit."""
    text = _CONTROL_CHARS.sub("", text).strip()
    if len(text) > MAX_QUESTION_CHARS:
        raise MessageTooLong(len(text))
    return text


async def chat(deps: Deps, turn: ChatTurn) -> AsyncIterator[ChatEvent]:
    """Answer one chat turn: quota first, then the agent's events, then durable usage."""
    check_message(turn.text)
    account, decision = await admit(deps, turn)
    if not decision.allowed:
        yield QuotaRefused(type="refused", account=account, decision=decision)
        return
    yield QuotaGranted(type="quota", account=account, decision=decision)
    async for event in answer_admitted(deps, turn, account, decision):
        yield event


async def answer_admitted(deps: Deps, turn: ChatTurn, account: Account,
                          decision: QuotaDecision) -> AsyncIterator[AgentEvent]:
    """Stream the agent's answer for a turn whose request was already consumed."""
    text = check_message(turn.text)
    turn = dataclasses.replace(turn, text=text)
    request_id = uuid.uuid4()
    started = time.perf_counter()
    final: Any = None
    try:
        async for event in answer_stream(deps, text, conversation_id=turn.conversation_id,
                                         saved_language=turn.saved_language,
                                         language_hint=turn.language_hint):
            if event.type == "final":
                final = event
            yield event
    finally:
        tools = list(final.plan.tools) if final is not None else []
        # Nothing answered, nothing analysed (a greeting, help), or no planned tool returned
        # any data (the answer only says so): the request is given back.
        if final is None or not tools or not final.substantive:
            await asyncio.shield(refund_request(deps, account, decision))
        await asyncio.shield(_record(deps, turn, account, request_id, started, final))


async def _record(deps: Deps, turn: ChatTurn, account: Account, request_id: uuid.UUID,
                  started: float, final: Any) -> None:
    project = getattr(final, "project", None) if final is not None else None
    usage = getattr(final, "usage", None)
    record = UsageRecord(
        request_id=request_id,
        account_id=account.id,
        identity=turn.identity,
        channel=turn.channel,
        project_id=project.id if project else None,
        project_symbol=project.symbol if project else None,
        project_name=project.name if project else None,
        tools=list(final.plan.tools) if final is not None else [],
        tokens_used=int((usage.tokens_in + usage.tokens_out) if usage else 0),
        cost_usd=float(usage.cost_usd if usage else 0.0),
        cache_hit=bool(getattr(final, "cache_hit", False)),
        latency_ms=int((time.perf_counter() - started) * 1000),
        status="ok" if final is not None else "failed",
        question=turn.text[:MAX_QUESTION_CHARS],
        conversation_id=turn.conversation_id,
        router=final.plan.router if final is not None else None,
    )
    try:
        await record_usage(deps, record)
    except Exception:
        # Usage must never turn a delivered answer into an error; the log keeps the trace.
        log.exception("could not record usage for request %s", request_id)
