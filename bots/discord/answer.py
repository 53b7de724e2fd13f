"""One question from Discord answered: progress in the deferred response, then the answer as
embeds (a field per tool, colour by stance, sources in the footer, the chart attached) with
follow-up buttons, continued in follow-up messages when it is longer than one message holds.

The caller has already deferred the interaction. Charging follows the chat service: a turn
that produced an answer is charged once; if no form of the answer could be delivered, the
request is given back here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import time
from typing import Any

import discord

from billing.checkout_link import checkout_link
from billing.quota import refund_request
from bots.discord.layout import (
    CHART_FILENAME,
    OutgoingMessage,
    answer_messages,
    plain_text_parts,
    progress_content,
    sources_footer,
    stance_colour,
    table_fields,
    tool_fields,
)
from bots.discord.send import InteractionReply
from bots.discord.views import answer_view, upgrade_view
from bots.language import UserLanguage, platform_hint, user_language
from bots.render import Progress
from chainlens.chat import (
    ChatTurn,
    MessageTooLong,
    QuotaGranted,
    QuotaRefused,
    chat,
)
from chainlens.deps import Deps
from chainlens.i18n import ENGLISH, Localizer, localizer
from chainlens.limiter import SendLimiter

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 1.2
# Free accounts see Upgrade under answers once this few requests are left today.
UPGRADE_HINT_REMAINING = 2


def conversation_id(interaction: discord.Interaction[Any]) -> str:
    """Memory per (channel, user): members of one server channel never share a conversation."""
    return f"discord:{interaction.channel_id or 'dm'}:{interaction.user.id}"


def identity_of(user: discord.abc.User) -> str:
    return f"discord:{user.id}"


def language_hint(interaction: discord.Interaction[Any]) -> str | None:
    """The user's Discord client language, then the server's (`guild_locale`)."""
    guild = interaction.guild_locale
    return platform_hint(interaction.locale.value, guild.value if guild is not None else None)


async def language_of(interaction: discord.Interaction[Any], deps: Deps) -> UserLanguage:
    """The user's saved choice (/lang) and their client's language (call after deferring)."""
    return await user_language(deps, identity_of(interaction.user), language_hint(interaction))


async def answer_question(
    interaction: discord.Interaction[Any],
    deps: Deps,
    limiter: SendLimiter,
    question: str,
    *,
    own_words: str | None = None,
) -> None:
    """Answer `question` in a deferred interaction (see the module docstring).

    `own_words` is what the user typed when `question` is one we phrased (a command's project,
    "" for a button): the turn's language comes from it, not from our English template."""
    reply = InteractionReply(interaction, limiter)
    language = await language_of(interaction, deps)
    turn_language = language.of(question if own_words is None else own_words)
    loc = localizer(turn_language)
    turn = ChatTurn(
        identity=identity_of(interaction.user),
        channel="discord",
        text=question,
        conversation_id=conversation_id(interaction),
        saved_language=language.saved,
        language_hint=language.hint,
        language=turn_language,
    )
    progress = Progress(loc)
    granted: QuotaGranted | None = None
    last_edit = 0.0
    try:
        # aclosing: if anything below fails, the chat service's own clean-up (refunding an
        # unanswered request) runs now, before the error handler speaks to the user.
        events_of_turn = chat(deps, turn)
        async with contextlib.aclosing(events_of_turn) as events:
            async for event in events:
                if isinstance(event, QuotaRefused):
                    await send_refusal(reply, deps, event, loc)
                    return
                if isinstance(event, QuotaGranted):
                    granted = event
                    continue
                plan_arrived = progress.apply(event)
                now = time.monotonic()
                due = plan_arrived or now - last_edit >= PROGRESS_INTERVAL_S
                if (
                    progress.final is None
                    and due
                    and await reply.try_edit(content=progress_content(progress))
                ):
                    last_edit = now
    except MessageTooLong as exc:
        await reply.edit(content=exc.text(loc))
        return
    final = progress.final
    charged = getattr(final, "type", None) == "final" and bool(final.plan.tools)
    delivered = False
    try:
        delivered = await deliver_answer(reply, deps, progress, granted, loc)
    finally:
        if not delivered and charged and granted is not None:
            # The chat service charged a finished answer; the user never saw it.
            await asyncio.shield(refund_request(deps, granted.account, granted.decision))


async def send_refusal(
    reply: InteractionReply, deps: Deps, refused: QuotaRefused, loc: Localizer = ENGLISH
) -> None:
    """The quota refusal, visible only to the asker, with an Upgrade button."""
    view = None
    if refused.decision.tier != "enterprise":
        view = upgrade_view(checkout_link(deps.settings, refused.account.id), loc)
    # The deferred "thinking" response is public and the refusal must not be. A follow-up
    # straight after a deferral would only replace that response, keeping it public
    # (Discord ignores its ephemeral flag then); so end the loading state first, send the
    # refusal as a new ephemeral message, and remove the public one.
    await reply.edit(content="…")
    # The decision's own upgrade link is the web's /pricing page (a browser account); the
    # button links Checkout for this Discord account instead.
    text = dataclasses.replace(refused.decision, upgrade_url="").refusal_message(loc)
    if view is not None:
        text += " " + loc._("Upgrade for more with the button below.")
    kwargs: dict[str, Any] = {"content": text, "ephemeral": True}
    if view is not None:
        kwargs["view"] = view
    await reply.followup(**kwargs)
    await reply.delete_original()


def _upgrade_url(deps: Deps, granted: QuotaGranted | None) -> str | None:
    if granted is None or granted.decision.tier != "free":
        return None
    left_today = granted.decision.day_limit - granted.decision.day_used
    if left_today > UPGRADE_HINT_REMAINING:
        return None
    return checkout_link(deps.settings, granted.account.id)


async def _chart(final: Any) -> bytes | None:
    projects = getattr(final, "projects", None) or []
    if len(projects) >= 2:  # a comparison: its projects' prices overlaid
        from chainlens.charts import answer_overlay
        from chainlens.i18n import localizer

        try:
            return await asyncio.to_thread(
                answer_overlay, projects, final.price_histories, localizer(final.language)
            )
        except Exception:  # an answer without its chart beats no answer
            log.exception("comparison chart failed; answering without it")
            return None
    project = getattr(final, "project", None)
    history = getattr(final, "price_history", None) or []
    if project is None or len(history) < 2:
        return None
    from chainlens.charts import render_price_chart

    try:
        return await asyncio.to_thread(render_price_chart, project.display, history)
    except Exception:  # an answer without its chart beats no answer
        log.exception("price chart for %s failed; answering without it", project.id)
        return None


async def deliver_answer(
    reply: InteractionReply,
    deps: Deps,
    progress: Progress,
    granted: QuotaGranted | None,
    loc: Localizer = ENGLISH,
) -> bool:
    """Send the finished answer; True once the user has it in some form.

    Embeds first; if Discord refuses them (a 4xx other than 429), the same answer as plain
    text, so a finished answer is never lost. 429s never reach here: discord.py waits them
    out and retries the very same request."""
    final = progress.final
    project = getattr(final, "project", None)
    report = getattr(final, "report", None)
    chart = await _chart(final)
    text, title, fields = (
        progress.answer,
        project.display if project else None,
        tool_fields(final, loc),
    )
    compared = getattr(final, "projects", None) or []
    if compared:  # a comparison: its table as fields side by side, one column per project
        text, fields = table_fields(progress.answer)
        title = " vs ".join(p.display for p in compared)
    messages = answer_messages(
        text,
        title=title,
        colour=stance_colour(report.stance if report else None),
        fields=fields,
        footer=sources_footer(final, loc),
        chart=chart is not None,
        inline=bool(compared),
    )
    suggestions = [(p.id, p.display) for p in getattr(final, "suggestions", None) or []]
    view = answer_view(
        project_id=project.id if project else None,
        suggestions=suggestions,
        upgrade_url=_upgrade_url(deps, granted),
        loc=loc,
    )
    sent = 0
    try:
        for index, message in enumerate(messages):
            last = index == len(messages) - 1
            await _send_part(
                reply, message, first=index == 0, chart=chart, view=view if last else None
            )
            sent += 1
        return True
    except discord.HTTPException:
        log.exception(
            "discord refused the answer's embeds (message %d of %d); sending it as plain text",
            sent + 1,
            len(messages),
        )
    try:
        parts = plain_text_parts(progress.answer)
        for index, part in enumerate(parts):
            if index == 0 and sent == 0:
                await reply.edit(content=part, embeds=[], attachments=[])
            else:
                await reply.followup(content=part)
        return True
    except discord.HTTPException:
        log.exception("discord refused the plain-text answer too")
        return sent > 0


async def _send_part(
    reply: InteractionReply,
    message: OutgoingMessage,
    *,
    first: bool,
    chart: bytes | None,
    view: discord.ui.View | None,
) -> None:
    files = (
        [discord.File(io.BytesIO(chart), filename=CHART_FILENAME)]
        if message.chart and chart is not None
        else []
    )
    if first:
        fields: dict[str, Any] = {"content": None, "embeds": message.embeds, "attachments": files}
        if view is not None:
            fields["view"] = view
        await reply.edit(**fields)
        return
    kwargs: dict[str, Any] = {"embeds": message.embeds}
    if files:
        kwargs["files"] = files
    if view is not None:
        kwargs["view"] = view
    await reply.followup(**kwargs)
