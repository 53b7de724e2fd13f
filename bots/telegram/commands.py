"""The command handlers: /start /help /research /price /sentiment /tokenomics /team /usage
/upgrade /link /alpha, the follow-up buttons, and plain questions."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from billing.accounts import (
    account_for_identity,
    create_link_code,
    redeem_link_code,
)
from billing.checkout_link import checkout_link
from billing.errors import LinkCodeInvalid
from billing.quota import quota_status
from bots.render import (
    HELP_TEXT,
    PROJECT_COMMANDS,
    Button,
    button_question,
    parse_button,
)
from bots.telegram.answer import answer_question
from bots.telegram.chats import addressed_text, asker_of, identity_of, is_chat_admin
from bots.telegram.delivery import send_markdown
from chainlens.deps import Deps
from reports.subscriptions import get_subscription, subscribe, unsubscribe

log = logging.getLogger(__name__)
_PROJECT_COMMANDS = {spec.name: spec for spec in PROJECT_COMMANDS}


def deps_of(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    deps: Deps = context.application.bot_data["deps"]
    return deps


async def _say(update: Update, context: ContextTypes.DEFAULT_TYPE, markdown: str, *,
               buttons: list[list[Button]] | None = None,
               urls: dict[str, str] | None = None) -> None:
    chat = update.effective_chat
    assert chat is not None
    await send_markdown(context.bot, chat.id, markdown, buttons=buttons or [], urls=urls)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _say(update, context, "👋 Welcome to ChainLens.\n\n" + HELP_TEXT)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _say(update, context, HELP_TEXT)


async def project_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/research, /price, /sentiment, /tokenomics, /team: a question about one project."""
    message = update.effective_message
    assert message is not None and message.text is not None
    name = message.text.split()[0].lstrip("/").partition("@")[0].lower()
    spec = _PROJECT_COMMANDS[name]
    project = " ".join(context.args or [])
    if not project:
        await _say(update, context, spec.usage_hint)
        return
    await answer_question(context.bot, deps_of(context), asker_of(update),
                          spec.question_for(project),
                          drafts=context.application.bot_data["drafts"])


async def question(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Plain text: always in private chats; in groups only when the bot is addressed."""
    message = update.effective_message
    if message is None or not message.text:
        return
    text = addressed_text(message, context.bot.username, context.bot.id)
    if text is None:
        return
    if not text:
        await _say(update, context, "Ask me about a project, for example: Research Uniswap")
        return
    await answer_question(context.bot, deps_of(context), asker_of(update), text,
                          drafts=context.application.bot_data["drafts"])


async def usage(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    deps = deps_of(context)
    account = await account_for_identity(deps, identity_of(update))
    status = await quota_status(deps, account)
    await _say(update, context,
               f"Plan: {account.tier}. {status.remaining} of {status.limit} requests left today "
               f"(resets {status.reset_at:%H:%M} UTC).",
               buttons=[[Button("⭐ Upgrade", "upgrade")]] if account.tier == "free" else None)


async def link(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    deps = deps_of(context)
    chat = update.effective_chat
    assert chat is not None
    if chat.type != ChatType.PRIVATE:
        await _say(update, context, "Link codes are personal: send /link to me in a private chat.")
        return
    args = context.args or []
    if args:
        try:
            account = await redeem_link_code(deps, identity_of(update), args[0])
        except LinkCodeInvalid:
            await _say(update, context,
                       "That code is not valid (codes are single use and expire after 10 "
                       "minutes). Send /link in the other channel to get a new one.")
            return
        await _say(update, context,
                   f"Linked. This chat now shares the {account.tier} account and its quota.")
        return
    account = await account_for_identity(deps, identity_of(update))
    code = await create_link_code(deps, account)
    await _say(update, context,
               f"Your link code: {code}\nSend /link {code} in Discord, or enter it on the web "
               "account page, within 10 minutes. It works once.")


def _public_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return "." in host and host != "localhost" and not host.startswith("127.")


async def upgrade_offer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Pro by card (a signed Checkout link for this account) or by Telegram Stars."""
    from bots.telegram.stars import stars_invoice_link

    deps = deps_of(context)
    settings = deps.settings
    account = await account_for_identity(deps, identity_of(update))
    if account.tier != "free":
        await _say(update, context, f"This account is already on {account.tier}. Thank you!")
        return
    lines = ["**Pro**: 1,000 requests a day on every channel (Telegram, Discord, the web)."]
    urls: dict[str, str] = {}
    buttons: list[list[Button]] = []
    if settings.stripe_configured and settings.stripe_price_pro:
        url = checkout_link(settings, account.id, "pro")
        if _public_url(url):
            urls["card"] = url
            buttons.append([Button("💳 Pay by card", "card")])
        else:  # Telegram refuses buttons to local addresses; show the link itself
            lines.append(f"Pay by card: {url}")
        lines.append("The card link is for this account and works for 15 minutes.")
    if settings.telegram_stars_pro_price:
        urls["stars"] = await stars_invoice_link(context.bot, settings, account.id)
        buttons.append([Button(f"⭐ Pay {settings.telegram_stars_pro_price} Stars a month",
                               "stars")])
    if not urls and len(lines) == 1:
        await _say(update, context,
                   "Upgrades are not available here yet: billing is not configured on this "
                   "server.")
        return
    await _say(update, context, "\n\n".join(lines), buttons=buttons, urls=urls)


async def alpha(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/alpha [on|off]: subscribe this chat to the daily report, or unsubscribe it."""
    message = update.effective_message
    assert message is not None
    deps = deps_of(context)
    if not await is_chat_admin(context.bot, message):
        await _say(update, context, "Only this chat's admins can subscribe it to the daily report.")
        return
    destination = str(message.chat.id)
    wanted = (context.args or [""])[0].lower()
    current = await get_subscription(deps, channel="telegram", destination=destination)
    active = current is not None and current.active
    if wanted in ("off", "stop", "unsubscribe") or (not wanted and active):
        if await unsubscribe(deps, channel="telegram", destination=destination,
                             reason="unsubscribed"):
            await _say(update, context, "Unsubscribed: this chat will no longer get the daily "
                                        "alpha report. Send /alpha to subscribe again.")
        else:
            await _say(update, context, "This chat is not subscribed to the daily report.")
        return
    account = await account_for_identity(deps, identity_of(update))
    _, changed = await subscribe(deps, account_id=account.id, channel="telegram",
                                 destination=destination)
    await _say(update, context,
               "Subscribed: the daily alpha report will arrive in this chat every day. "
               "Send /alpha again to unsubscribe." if changed
               else "This chat already gets the daily alpha report (/alpha off to stop).")


async def button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every button press is acknowledged first, then acted on."""
    query = update.callback_query
    assert query is not None
    button = parse_button(query.data or "")
    if button is None or not isinstance(query.message, Message):
        await query.answer("This button no longer works; please ask again.")
        return
    await query.answer()
    if button.action == "upgrade":
        await upgrade_offer(update, context)
        return
    await answer_question(context.bot, deps_of(context), asker_of(update),
                          button_question(button),
                          drafts=context.application.bot_data["drafts"])
