"""One question answered in a Telegram chat: progress at once, streamed, one final message.

Private chats stream with `sendMessageDraft` (Bot API 9.5+) and finish with `sendMessage`;
where drafts are unavailable, and in groups, one progress message is edited (throttled, best
effort) and becomes the answer. The first reaction (typing) goes out before any database work.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from telegram import Bot, Message, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import BadRequest, RetryAfter, TelegramError

from bots.language import user_language
from bots.render import (
    Button,
    Progress,
    RenderedPart,
    answer_buttons,
    markdown_to_plain,
    render_telegram,
    upgrade_button,
)
from bots.telegram.delivery import edit_part, keyboard, send_parts
from bots.telegram.limits import SendSkipped
from chainlens.chat import ChatTurn, MessageTooLong, chat
from chainlens.deps import Deps
from chainlens.i18n import ENGLISH, Localizer, localizer

log = logging.getLogger(__name__)
_PROGRESS_INTERVAL_S = 1.0
_PROGRESS_CHARS = 3500


@dataclass(frozen=True, slots=True)
class Asker:
    """Who asked, where, and where the answer goes."""

    chat_id: int
    chat_type: str  # private | group | supergroup | channel
    identity: str  # telegram:<user id> (or the sender chat's id for anonymous admins)
    conversation_id: str
    reply_to: int | None = None
    thread_id: int | None = None
    language_hint: str | None = None  # the asker's Telegram app language (`language_code`)

    @property
    def private(self) -> bool:
        return self.chat_type == "private"


class AnswerFailed(Exception):
    """An answer broke part-way; carries where to apologise (the progress message, if any)."""

    def __init__(self, asker: Asker, status_message_id: int | None) -> None:
        super().__init__(f"answer failed in chat {asker.chat_id}")
        self.asker = asker
        self.status_message_id = status_message_id


@dataclass(slots=True)
class DraftSupport:
    """Whether this Bot API server has `sendMessageDraft` (learnt once, kept per application)."""

    available: bool = True


class _Stream:
    """The visible progress of one answer: a draft (private chats) or an edited message."""

    def __init__(
        self, bot: Bot, asker: Asker, drafts: DraftSupport, loc: Localizer = ENGLISH
    ) -> None:
        self.bot = bot
        self.loc = loc
        self.asker = asker
        self.drafts = drafts
        self.use_drafts = drafts.available and asker.private
        self.draft_id = secrets.randbelow(2**31 - 1) + 1
        self.status: Message | None = None
        self.last_shown = 0.0

    async def react(self) -> None:
        """The first visible reaction: typing (before any database work)."""
        try:
            await self.bot.send_chat_action(
                self.asker.chat_id, ChatAction.TYPING, message_thread_id=self.asker.thread_id
            )
        except TelegramError as exc:  # a reaction is cosmetic; the answer still comes
            log.info("telegram chat action failed: %s", exc)

    async def start(self) -> None:
        """A draft placeholder or a progress message, in the turn's language."""
        await self.show(Progress(self.loc), force=True)

    async def show(self, progress: Progress, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_shown < _PROGRESS_INTERVAL_S:
            return
        self.last_shown = now
        text = progress.status_line()
        if progress.text:
            text += "\n\n" + markdown_to_plain(progress.text)[-_PROGRESS_CHARS:]
        try:
            if self.use_drafts:
                await self.bot.send_message_draft(
                    self.asker.chat_id,
                    self.draft_id,
                    text,
                    message_thread_id=self.asker.thread_id,
                    rate_limit_args={"best_effort": True},
                )  # type: ignore[call-arg]
            elif self.status is None:
                self.status = await self.bot.send_message(
                    self.asker.chat_id,
                    text,
                    message_thread_id=self.asker.thread_id,
                    reply_parameters=_reply(self.asker),
                    rate_limit_args={"best_effort": True},
                )  # type: ignore[call-arg]
            else:
                await edit_part(
                    self.bot,
                    self.asker.chat_id,
                    self.status.message_id,
                    RenderedPart(text, text),
                    best_effort=True,
                    html=False,
                )
        except (SendSkipped, RetryAfter):
            return  # no free slot now: the next update (or the answer) shows it
        except TelegramError as exc:
            if not self.use_drafts:  # progress is cosmetic: a timeout must not cost the answer
                log.info("telegram progress update failed: %s", exc)
                return
            # An older Bot API server (404) or one refusing drafts: edit a message instead.
            log.info("telegram drafts unavailable (%s); editing a message instead", exc)
            self.use_drafts = self.drafts.available = False
            await self.show(progress, force=True)

    async def finish(
        self,
        parts: list[RenderedPart],
        buttons: list[list[Button]],
        urls: dict[str, str] | None = None,
    ) -> None:
        """Deliver the final answer: the progress message becomes its first part."""
        markup = keyboard(buttons, urls)
        if self.status is not None:
            try:
                await edit_part(
                    self.bot,
                    self.asker.chat_id,
                    self.status.message_id,
                    parts[0],
                    markup=markup if len(parts) == 1 else None,
                )
            except BadRequest as exc:  # deleted meanwhile, or too old to edit: send afresh
                log.info("telegram final edit failed (%s); sending a new message", exc)
            else:
                await send_parts(
                    self.bot,
                    self.asker.chat_id,
                    parts[1:],
                    markup=markup,
                    thread_id=self.asker.thread_id,
                )
                return
        await send_parts(
            self.bot,
            self.asker.chat_id,
            parts,
            markup=markup,
            reply_to=self.asker.reply_to,
            thread_id=self.asker.thread_id,
        )


def _reply(asker: Asker) -> ReplyParameters | None:
    if asker.reply_to is None or asker.private:
        return None
    return ReplyParameters(message_id=asker.reply_to, allow_sending_without_reply=True)


async def answer_question(
    bot: Bot,
    deps: Deps,
    asker: Asker,
    text: str,
    *,
    own_words: str | None = None,
    drafts: DraftSupport | None = None,
) -> None:
    """Answer `text` for `asker`, streaming progress, then one formatted answer with buttons.

    `own_words` is what the user typed when `text` is a question we phrased (a command's
    project, "" for a button): the turn's language is decided from it, not from our template
    (None: `text` is the user's own message)."""
    stream = _Stream(bot, asker, drafts or DraftSupport())
    try:
        await stream.react()
        language = await user_language(deps, asker.identity, asker.language_hint)
        turn_language = language.of(text if own_words is None else own_words)
        loc = stream.loc = localizer(turn_language)
        await stream.start()
        turn = ChatTurn(
            identity=asker.identity,
            channel="telegram",
            text=text,
            conversation_id=asker.conversation_id,
            saved_language=language.saved,
            language_hint=language.hint,
            language=turn_language,
        )
        progress = Progress(loc)
        free_account = True
        try:
            async for event in chat(deps, turn):
                if event.type == "refused":
                    await stream.finish(render_telegram(event.text(loc)), [[upgrade_button(loc)]])
                    return
                if event.type == "quota":
                    free_account = event.account.tier == "free"
                    continue
                plan_arrived = progress.apply(event)
                if progress.final is None:
                    await stream.show(progress, force=plan_arrived)
        except MessageTooLong as exc:
            await stream.finish(render_telegram(exc.text(loc)), [])
            return
        final = progress.final
        await stream.finish(
            render_telegram(progress.answer), answer_buttons(final, upgrade=free_account, loc=loc)
        )
        await _send_chart(bot, asker, final, loc)
    except Exception as exc:
        status = stream.status.message_id if stream.status is not None else None
        raise AnswerFailed(asker, status) from exc


async def _send_chart(bot: Bot, asker: Asker, final: object, loc: Localizer = ENGLISH) -> None:
    projects = getattr(final, "projects", None) or []
    if len(projects) >= 2:  # a comparison: its projects' prices overlaid, one photo
        await _send_comparison_chart(bot, asker, final, projects)
        return
    history = getattr(final, "price_history", None)
    project = getattr(final, "project", None)
    if not history or project is None or len(history) < 2:
        return
    from chainlens.charts import render_price_chart

    png = await asyncio.to_thread(render_price_chart, project.display, history)
    await bot.send_photo(
        asker.chat_id,
        png,
        caption=loc._("{project} price").format(project=project.display),
        message_thread_id=asker.thread_id,
    )


async def _send_comparison_chart(bot: Bot, asker: Asker, final: Any, projects: list[Any]) -> None:
    from chainlens.charts import answer_overlay, comparison_caption
    from chainlens.i18n import localizer

    loc = localizer(final.language)
    try:
        png = await asyncio.to_thread(answer_overlay, projects, final.price_histories, loc)
    except Exception:  # the answer is delivered; a chart that cannot be drawn is left out
        log.exception("comparison chart failed; the answer goes without it")
        return
    if png is not None:
        await bot.send_photo(
            asker.chat_id,
            png,
            caption=comparison_caption(projects, loc),
            message_thread_id=asker.thread_id,
        )
