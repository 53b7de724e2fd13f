"""The command handlers: /start /help /research /price /sentiment /tokenomics /team /usage
/upgrade /link /alpha /lang, the follow-up and language buttons, and plain questions.

Every reply is in the user's language (bots/language.py): a plain question's own language,
else their saved choice (/lang), else their Telegram app's language, else English."""

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
    set_language,
)
from billing.checkout_link import checkout_link
from billing.errors import LinkCodeInvalid
from billing.quota import quota_status
from bots.language import (
    LANGUAGE_CHOICES,
    USAGE,
    LanguageChoice,
    UserLanguage,
    choice_label,
    choice_set_text,
    current_choice_text,
    parse_choice,
    user_language,
)
from bots.render import (
    HELP_TEXT,
    PROJECT_COMMANDS,
    Button,
    button_question,
    parse_button,
    upgrade_button,
)
from bots.telegram.answer import answer_question
from bots.telegram.chats import (
    addressed_text,
    asker_of,
    identity_of,
    is_chat_admin,
    language_hint,
)
from bots.telegram.delivery import send_markdown
from chainlens.deps import Deps
from chainlens.i18n import Localizer, as_language
from reports.subscriptions import get_subscription, subscribe, unsubscribe

log = logging.getLogger(__name__)
_PROJECT_COMMANDS = {spec.name: spec for spec in PROJECT_COMMANDS}


def deps_of(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    deps: Deps = context.application.bot_data["deps"]
    return deps


async def _say(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    markdown: str,
    *,
    buttons: list[list[Button]] | None = None,
    urls: dict[str, str] | None = None,
) -> None:
    chat = update.effective_chat
    assert chat is not None
    await send_markdown(context.bot, chat.id, markdown, buttons=buttons or [], urls=urls)


async def language_of(update: Update, context: ContextTypes.DEFAULT_TYPE) -> UserLanguage:
    """The sender's saved choice and their Telegram app's language."""
    return await user_language(deps_of(context), identity_of(update), language_hint(update))


async def loc_of(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Localizer:
    """The localizer for a reply to a command (no free text of the user's to go by)."""
    return (await language_of(update, context)).loc()


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    loc = await loc_of(update, context)
    await _say(update, context, loc._("👋 Welcome to ChainLens.") + "\n\n" + loc._(HELP_TEXT))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    loc = await loc_of(update, context)
    await _say(update, context, loc._(HELP_TEXT))


async def project_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/research, /price, /sentiment, /tokenomics, /team: a question about one project."""
    message = update.effective_message
    assert message is not None and message.text is not None
    name = message.text.split()[0].lstrip("/").partition("@")[0].lower()
    spec = _PROJECT_COMMANDS[name]
    project = " ".join(context.args or [])
    if not project:
        await _say(update, context, spec.usage(await loc_of(update, context)))
        return
    # The question is our English template: the user's own words (the project) decide.
    await answer_question(
        context.bot,
        deps_of(context),
        asker_of(update),
        spec.question_for(project),
        own_words=project,
        drafts=context.application.bot_data["drafts"],
    )


async def question(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Plain text: always in private chats; in groups only when the bot is addressed."""
    message = update.effective_message
    if message is None or not message.text:
        return
    text = addressed_text(message, context.bot.username, context.bot.id)
    if text is None:
        return
    if not text:
        loc = await loc_of(update, context)
        await _say(update, context, loc._("Ask me about a project, for example: Research Uniswap"))
        return
    await answer_question(
        context.bot,
        deps_of(context),
        asker_of(update),
        text,
        own_words=text,
        drafts=context.application.bot_data["drafts"],
    )


async def usage(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    deps = deps_of(context)
    account = await account_for_identity(deps, identity_of(update))
    loc = await loc_of(update, context)
    status = await quota_status(deps, account)
    await _say(
        update,
        context,
        loc._(
            "Plan: {tier}. {remaining} of {limit} requests left today (resets {time} UTC)."
        ).format(
            tier=account.tier,
            remaining=loc.count(status.remaining),
            limit=loc.count(status.limit),
            time=f"{status.reset_at:%H:%M}",
        ),
        buttons=[[upgrade_button(loc)]] if account.tier == "free" else None,
    )


async def link(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    deps = deps_of(context)
    chat = update.effective_chat
    assert chat is not None
    loc = await loc_of(update, context)
    if chat.type != ChatType.PRIVATE:
        await _say(
            update, context, loc._("Link codes are personal: send /link to me in a private chat.")
        )
        return
    args = context.args or []
    if args:
        try:
            account = await redeem_link_code(deps, identity_of(update), args[0])
        except LinkCodeInvalid:
            await _say(
                update,
                context,
                loc._(
                    "That code is not valid (codes are single use and expire after 10 "
                    "minutes). Send /link in the other channel to get a new one."
                ),
            )
            return
        # The account now joined may have its own saved language.
        loc = await loc_of(update, context)
        await _say(
            update,
            context,
            loc._("Linked. This chat now shares the {tier} account and its quota.").format(
                tier=account.tier
            ),
        )
        return
    account = await account_for_identity(deps, identity_of(update))
    code = await create_link_code(deps, account)
    await _say(
        update,
        context,
        loc._(
            "Your link code: {code}\nSend /link {code} in Discord, or enter it on the "
            "web account page, within 10 minutes. It works once."
        ).format(code=code),
    )


def _public_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return "." in host and host != "localhost" and not host.startswith("127.")


async def upgrade_offer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Pro by card (a signed Checkout link for this account) or by Telegram Stars."""
    from bots.telegram.stars import stars_invoice_link

    deps = deps_of(context)
    settings = deps.settings
    account = await account_for_identity(deps, identity_of(update))
    loc = await loc_of(update, context)
    if account.tier != "free":
        await _say(
            update,
            context,
            loc._("This account is already on {tier}. Thank you!").format(tier=account.tier),
        )
        return
    lines = [
        loc._(
            "**Pro**: {daily} requests a day on every channel (Telegram, Discord, the web)."
        ).format(daily=loc.number(settings.limits_for("pro").daily))
    ]
    urls: dict[str, str] = {}
    buttons: list[list[Button]] = []
    if settings.stripe_configured and settings.stripe_price_pro:
        url = checkout_link(settings, account.id, "pro")
        if _public_url(url):
            urls["card"] = url
            buttons.append([Button(loc._("💳 Pay by card"), "card")])
        else:  # Telegram refuses buttons to local addresses; show the link itself
            lines.append(loc._("Pay by card: {url}").format(url=url))
        lines.append(loc._("The card link is for this account and works for 15 minutes."))
    if settings.telegram_stars_pro_price:
        urls["stars"] = await stars_invoice_link(context.bot, settings, account.id, loc)
        buttons.append(
            [
                Button(
                    loc._("⭐ Pay {stars} Stars a month").format(
                        stars=loc.count(settings.telegram_stars_pro_price)
                    ),
                    "stars",
                )
            ]
        )
    if not urls and len(lines) == 1:
        await _say(
            update,
            context,
            loc._("Upgrades are not available here yet: billing is not configured on this server."),
        )
        return
    await _say(update, context, "\n\n".join(lines), buttons=buttons, urls=urls)


async def alpha(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/alpha [on|off]: subscribe this chat to the daily report, or unsubscribe it."""
    message = update.effective_message
    assert message is not None
    deps = deps_of(context)
    loc = await loc_of(update, context)
    if not await is_chat_admin(context.bot, message):
        await _say(
            update, context, loc._("Only this chat's admins can subscribe it to the daily report.")
        )
        return
    destination = str(message.chat.id)
    wanted = (context.args or [""])[0].lower()
    current = await get_subscription(deps, channel="telegram", destination=destination)
    active = current is not None and current.active
    if wanted in ("off", "stop", "unsubscribe") or (not wanted and active):
        if await unsubscribe(
            deps, channel="telegram", destination=destination, reason="unsubscribed"
        ):
            await _say(
                update,
                context,
                loc._(
                    "Unsubscribed: this chat will no longer get the daily alpha "
                    "report. Send /alpha to subscribe again."
                ),
            )
        else:
            await _say(update, context, loc._("This chat is not subscribed to the daily report."))
        return
    account = await account_for_identity(deps, identity_of(update))
    # `/alpha vi` / `/alpha en`: the report's language in this chat (else the account's)
    language = next(filter(None, map(as_language, context.args or [])), None)
    _, changed = await subscribe(
        deps, account_id=account.id, channel="telegram", destination=destination, language=language
    )
    await _say(
        update,
        context,
        loc._(
            "Subscribed: the daily alpha report will arrive in this chat every day. "
            "Send /alpha again to unsubscribe."
        )
        if changed
        else loc._("This chat already gets the daily alpha report (/alpha off to stop)."),
    )


async def button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every button press is acknowledged first, then acted on."""
    query = update.callback_query
    assert query is not None
    button = parse_button(query.data or "")
    if button is None or not isinstance(query.message, Message):
        loc = await loc_of(update, context)
        await query.answer(loc._("This button no longer works; please ask again."))
        return
    await query.answer()
    if button.action == "upgrade":
        await upgrade_offer(update, context)
        return
    # A question we phrase in English: nothing the user typed decides its language.
    await answer_question(
        context.bot,
        deps_of(context),
        asker_of(update),
        button_question(button),
        own_words="",
        drafts=context.application.bot_data["drafts"],
    )


# --- /lang ------------------------------------------------------------------------------------

LANGUAGE_CALLBACK_PATTERN = r"^lang:(en|vi|auto)$"


def _language_buttons(loc: Localizer) -> list[list[Button]]:
    return [[Button(choice_label(choice, loc), "lang", choice) for choice in LANGUAGE_CHOICES]]


async def lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/lang shows the choice with buttons; /lang en|vi|auto sets it for the account."""
    language = await language_of(update, context)
    loc = language.loc()
    args = " ".join(context.args or [])
    if not args:
        await _say(
            update, context, current_choice_text(language, loc), buttons=_language_buttons(loc)
        )
        return
    choice = parse_choice(args)
    if choice is None:
        await _say(update, context, loc._(USAGE), buttons=_language_buttons(loc))
        return
    await _set_language(update, context, choice)


async def _set_language(
    update: Update, context: ContextTypes.DEFAULT_TYPE, choice: LanguageChoice
) -> None:
    deps = deps_of(context)
    account = await account_for_identity(deps, identity_of(update))
    await set_language(deps, account.id, None if choice == "auto" else choice)
    # Confirmed in the language now in force.
    await _say(update, context, choice_set_text(choice, await loc_of(update, context)))


async def language_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A /lang button: set the presser's choice."""
    query = update.callback_query
    assert query is not None
    choice = parse_choice((query.data or "").partition(":")[2])
    if choice is None or not isinstance(query.message, Message):
        loc = await loc_of(update, context)
        await query.answer(loc._("This button no longer works; please ask again."))
        return
    await query.answer()
    await _set_language(update, context, choice)
