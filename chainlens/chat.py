"""The chat service: one question from any channel, answered under one account and quota.

Adapters (web, Telegram, Discord, CLI) turn a platform event into a `ChatTurn` and render
the events of `chat()`; they never touch billing tables or the agent directly.

Charging rule, the same for every channel: a turn that delivered answer text is charged and
its usage recorded; a turn that delivered nothing (the client left first, or no answer could
be built) gives its request back. "Delivered" means the adapter took a `text` (or `final`)
event and asked for the next one — a web stream has written it to the socket, a bot has shown
it. Greetings and help (a plan without tools) are never charged. The refund and the usage
record run together as one task that finishes even when the request is cancelled.

Errors: `MessageTooLong` (before any quota is spent). A spent quota is not an exception: the
stream yields `QuotaRefused` and ends, so every channel can say it in its own words.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from agent import MAX_QUESTION_CHARS, AgentEvent, answer_stream, turn_cache
from agent.language import detect_language
from agent.rules import alert_request
from agent.stream import clean_question
from billing.accounts import Account, account_for_identity
from billing.quota import QuotaDecision, consume_request, refund_request
from billing.quota_store import Rider
from billing.usage import UsageRecord, record_usage
from chainlens.deps import Deps
from chainlens.i18n import ENGLISH, N_, Language, Localizer, as_language, localizer
from chainlens.shield import finish_shielded

log = logging.getLogger(__name__)

# C0 control characters except tab and newline: never meaningful in a question, and NUL
# cannot be stored by PostgreSQL.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

Channel = Literal["web", "api", "telegram", "discord", "cli"]


class MessageTooLong(ValueError):
    """The question is longer than the agent accepts (`str()` in English, `text(loc)` in the
    user's language)."""

    def __init__(self, length: int) -> None:
        self.length = length
        super().__init__(self.text(ENGLISH))

    def text(self, loc: Localizer = ENGLISH) -> str:
        return loc._(
            "Your message is {length} characters; the limit is {limit}. Please ask a "
            "shorter question."
        ).format(length=loc.count(self.length), limit=loc.count(MAX_QUESTION_CHARS))


@dataclass(frozen=True, slots=True)
class ChatTurn:
    identity: str  # "telegram:123", "web:ann@example.com", "web-anon:…"
    channel: Channel
    text: str
    conversation_id: str | None = None
    # The client network a free web caller also counts against (informational here: the web
    # admits its requests itself, see web.auth.admit_web_request).
    client_ip: str | None = None
    # What the channel knows about the user's language (agent/language.py decides the turn's):
    # their saved choice, and the platform's hint (Telegram language_code, Discord locale,
    # the browser's Accept-Language).
    saved_language: str | None = None
    language_hint: str | None = None
    # The turn's language when the adapter phrased the question itself from a command or a
    # button ("Research X"): our English template must not decide it (bots/language.py).
    language: str | None = None

    @property
    def reply_language(self) -> Language:
        """The language the turn is answered in (the agent's rule, or the adapter's choice)."""
        return as_language(self.language) or detect_language(
            self.text, saved=self.saved_language, hint=self.language_hint
        )


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

    def text(self, loc: Localizer = ENGLISH) -> str:
        return self.decision.refusal_message(loc)


ChatEvent = QuotaGranted | QuotaRefused | AgentEvent


async def admit(
    deps: Deps, turn: ChatTurn, *, account: Account | None = None
) -> tuple[Account, QuotaDecision]:
    """Map the identity to its account (unless the caller already has it, as the web does
    right after authenticating) and consume one request from its quota; a stored answer to
    the question is read in the same Redis call (`replay_rider`)."""
    if account is None:
        account = await account_for_identity(deps, turn.identity)
    decision = await consume_request(
        deps, account, client_ip=turn.client_ip, rider=replay_rider(deps, turn)
    )
    return account, decision


def replay_rider(deps: Deps, turn: ChatTurn) -> Rider | None:
    """The turn cache's replay of this turn's question, to ride in the quota script: one
    Redis round trip decides the quota and reads a stored answer, and a refused request
    never reads it. None for an alert (never a stored answer). `answer_admitted` gets the
    reply through the decision and `answer_stream` uses it for the same turn key."""
    text = check_message(turn.text)
    if alert_request(text) is not None:
        return None
    question = clean_question(text)
    language = as_language(turn.language) or detect_language(
        question, saved=turn.saved_language, hint=turn.language_hint
    )
    key = turn_cache.turn_key(deps, question, None, language)
    return turn_cache.lookup(deps, key, conversation_id=turn.conversation_id).rider(language)


def check_message(text: str) -> str:
    """The question, cleaned and stripped; `MessageTooLong` past the agent's limit."""
    text = _CONTROL_CHARS.sub("", text).strip()
    if len(text) > MAX_QUESTION_CHARS:
        raise MessageTooLong(len(text))
    return text


async def chat(deps: Deps, turn: ChatTurn) -> AsyncGenerator[ChatEvent, None]:
    """Answer one chat turn: quota first, then the agent's events, then durable usage."""
    check_message(turn.text)
    account, decision = await admit(deps, turn)
    if not decision.allowed:
        yield QuotaRefused(type="refused", account=account, decision=decision)
        return
    yield QuotaGranted(type="quota", account=account, decision=decision)
    async with aclosing(answer_admitted(deps, turn, account, decision)) as events:
        async for event in events:
            yield event


@dataclass(slots=True)
class _Turn:
    """What a turn produced so far, for the charge and the usage record."""

    request_id: uuid.UUID = field(default_factory=uuid.uuid4)
    started: float = field(default_factory=time.perf_counter)
    plan: Any = None
    final: Any = None
    delivered: bool = False  # the adapter took answer text and asked for more
    any_data: bool = False  # some planned tool returned data

    @property
    def tools(self) -> list[str]:
        source = self.final or self.plan
        return list(source.plan.tools) if source is not None else []

    @property
    def charged(self) -> bool:
        # Charged: answer text reached the caller, tools ran, and the answer has substance
        # (not only "no planned tool returned any data", which says it was not charged).
        substantive = (
            getattr(self.final, "substantive", True) if self.final is not None else self.any_data
        )
        source = self.final or self.plan
        market = source is not None and getattr(source.plan, "intent", None) == "market"
        return self.delivered and (bool(self.tools) or market) and substantive


async def answer_admitted(
    deps: Deps, turn: ChatTurn, account: Account, decision: QuotaDecision
) -> AsyncGenerator[AgentEvent, None]:
    """Stream the agent's answer for a turn whose request was already consumed."""
    text = check_message(turn.text)
    turn = dataclasses.replace(turn, text=text)
    progress = _Turn()
    if (alert := alert_request(text)) is not None:
        # An alert to set, not a question: confirmed in words, never charged (no tools).
        try:
            async for event in alert_turn(deps, turn, account, alert):
                yield event
        finally:
            await finish_shielded(_settle(deps, turn, account, decision, progress))
        return
    try:
        stream = cast(
            AsyncGenerator[AgentEvent, None],
            answer_stream(
                deps,
                text,
                conversation_id=turn.conversation_id,
                language=(_ridden_language(decision) or as_language(turn.language)),
                saved_language=turn.saved_language,
                language_hint=turn.language_hint,
                ridden=decision.ridden,
            ),
        )
        async with aclosing(stream) as events:
            async for event in events:
                if event.type == "plan":
                    progress.plan = event
                elif event.type == "final":
                    progress.final = event
                elif event.type == "tool_finished" and event.ok:
                    progress.any_data = True
                yield event
                # Resumed: the adapter has taken this event and wants the next one.
                if event.type in ("text", "final"):
                    progress.delivered = True
    finally:
        await finish_shielded(_settle(deps, turn, account, decision, progress))


def _ridden_language(decision: QuotaDecision) -> Language | None:
    """The language `replay_rider` detected for this turn, when its replay rode along."""
    rider = decision.ridden[0] if decision.ridden is not None else None
    return rider.language if isinstance(rider, turn_cache.ReplayRider) else None


async def give_back_unanswered(
    deps: Deps, turn: ChatTurn, account: Account, decision: QuotaDecision
) -> None:
    """Refund (and record) an admitted turn whose answer never started: the adapter lost its
    caller before it began `answer_admitted`, which otherwise settles the turn itself."""
    await finish_shielded(_settle(deps, turn, account, decision, _Turn()))


async def _settle(
    deps: Deps, turn: ChatTurn, account: Account, decision: QuotaDecision, progress: _Turn
) -> None:
    """Refund a turn that delivered nothing (or analysed nothing); record usage either way."""
    if not progress.charged:
        try:
            await refund_request(deps, account, decision)
        except Exception:
            log.exception("could not refund request %s", progress.request_id)
    await _record(deps, turn, account, progress)


async def _record(deps: Deps, turn: ChatTurn, account: Account, progress: _Turn) -> None:
    final, source = progress.final, progress.final or progress.plan
    project = getattr(source, "project", None)
    usage = getattr(final, "usage", None)
    status = "ok" if final is not None else ("partial" if progress.delivered else "failed")
    record = UsageRecord(
        request_id=progress.request_id,
        account_id=account.id,
        identity=turn.identity,
        channel=turn.channel,
        project_id=project.id if project else None,
        project_symbol=project.symbol if project else None,
        project_name=project.name if project else None,
        tools=progress.tools,
        tokens_used=int((usage.tokens_in + usage.tokens_out) if usage else 0),
        cost_usd=float(usage.cost_usd if usage else 0.0),
        cache_hit=bool(getattr(final, "cache_hit", False)),
        latency_ms=int((time.perf_counter() - progress.started) * 1000),
        status=status,
        question=turn.text[:MAX_QUESTION_CHARS],
        conversation_id=turn.conversation_id,
        router=source.plan.router if source is not None else None,
    )
    try:
        await record_usage(deps, record)
    except Exception:
        # Usage must never turn a delivered answer into an error; the log keeps the trace.
        log.exception("could not record usage for request %s", progress.request_id)


def alert_destination(turn: ChatTurn, account: Account) -> tuple[str, str] | None:
    """Where an alert set in this turn is delivered: the chat it was asked in (Telegram,
    Discord), or the signed-in account's e-mail (web, API); None when there is nowhere."""
    kind, _, rest = turn.identity.partition(":")
    if turn.channel in ("telegram", "discord"):
        conv = (turn.conversation_id or "").split(":")
        if len(conv) >= 2 and conv[0] == turn.channel and conv[1].lstrip("-").isdigit():
            return turn.channel, conv[1]
        if turn.channel == "telegram" and kind == "telegram":
            return "telegram", rest  # a private chat's id is the user's
        return None
    if kind == "web":
        return "email", rest
    if account.email and kind != "web-anon":
        return "email", account.email
    return None


async def alert_turn(
    deps: Deps, turn: ChatTurn, account: Account, alert: str
) -> AsyncGenerator[AgentEvent, None]:
    """Set the alert a plain phrasing asked for and say so (or why not)."""
    from agent.events import FinalEvent, PlanEvent, PlanInfo, TextEvent
    from reports import watch

    language = turn.reply_language
    loc = localizer(language)
    plan = PlanInfo(tools=[], router="rules", intent="alert")
    suggestions: list[Any] = []
    yield PlanEvent(project=None, plan=plan, language=language)
    where = alert_destination(turn, account)
    try:
        if where is None:
            raise watch.WatchError(
                N_(
                    "Alerts need somewhere to be delivered: sign in on the web (they come by "
                    "e-mail), or use /alert in the Telegram or Discord chat where you want them."
                )
            )
        query, spec = watch.parse_alert(alert)
        made = await watch.create_alert(
            deps, account.id, query, spec, channel=where[0], destination=where[1]
        )
        if where[0] == "email":
            answer = loc._(
                "Alert set: {alert}. You get one message each time it happens; the "
                "account page lists your alerts."
            )
        else:
            answer = loc._(
                "Alert set: {alert}. You get one message each time it happens; "
                "/alerts lists yours, /alert delete {id} stops it."
            )
        answer = answer.format(alert=watch.describe(made, loc), id=made.id)
    except watch.UnknownProject as exc:
        answer, suggestions = exc.text(loc), list(exc.suggestions)
    except watch.WatchError as exc:
        answer = exc.text(loc)
    yield TextEvent(text=answer)
    yield FinalEvent(
        answer=answer,
        project=None,
        suggestions=suggestions,
        plan=plan,
        conversation_id=turn.conversation_id,
        language=language,
    )
