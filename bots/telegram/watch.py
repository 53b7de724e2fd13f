"""Watchlist and alert commands: /watch /unwatch /watchlist /alert /alerts (/alert delete),
and their buttons ("did you mean" suggestions, delete an alert).

Parsing and rendering only: the watchlist, the alerts, their limits and project resolution
are `reports.watch`. An alert set here is delivered to this chat; in a group or channel only
its admins may set one (the same check as /alpha), since the alert will post there.

Callback data (64 bytes at most): `watch:<id>`, `unwatch:<id>`, `alert:<id>:<kind>[:<level>]`
(a suggestion pressed instead of an unknown project), `alertdel:<alert id>`.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from billing.accounts import account_for_identity
from bots.render import Button, upgrade_button
from bots.telegram.chats import identity_of, is_chat_admin, is_member_admin
from bots.telegram.commands import loc_of
from bots.telegram.delivery import send_markdown
from chainlens.deps import Deps
from chainlens.i18n import N_, Localizer
from reports.watch import (
    Alert,
    AlertSpec,
    LimitReached,
    UnknownProject,
    WatchError,
    alerts_of,
    create_alert,
    delete_alert,
    describe,
    parse_alert,
    unwatch,
    watch,
    watchlist,
)

log = logging.getLogger(__name__)

WATCH_USAGE = N_("Usage: /watch <project>, for example /watch ETH")
UNWATCH_USAGE = N_("Usage: /unwatch <project>, for example /unwatch ETH")
ALERT_USAGE = N_(
    "Usage: /alert <project> <condition>, for example /alert BTC above 70000\n"
    "Conditions: above 70000 · below 3000 · move 10% (in 24 h) · risk (a new contract risk "
    "flag) · sentiment (a sentiment swing)\n"
    "/alerts lists your alerts with their ids; /alert delete <id> removes one."
)
DELETE_USAGE = N_("Usage: /alert delete <id>, for example /alert delete 12 (/alerts shows the ids)")
_DELETE_WORDS = {"delete", "del", "remove", "rm"}
_CALLBACK_LIMIT = 64
_MAX_SUGGESTIONS = 4
CALLBACK_PATTERN = r"^(watch|unwatch|alert|alertdel):"


def _deps(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    deps: Deps = context.application.bot_data["deps"]
    return deps


async def _say(
    context: ContextTypes.DEFAULT_TYPE,
    chat_id: int,
    markdown: str,
    *,
    buttons: list[list[Button]] | None = None,
) -> None:
    await send_markdown(context.bot, chat_id, markdown, buttons=buttons or [])


def _chat_id(update: Update) -> int:
    assert update.effective_chat is not None
    return update.effective_chat.id


def _level_text(level: float | None) -> str:
    """A level as plain digits (never `1e+06`), the way `parse_alert` reads numbers."""
    return "" if level is None else format(Decimal(repr(level)).normalize(), "f")


def _suggestion_buttons(
    error: UnknownProject, action: str, spec: AlertSpec | None
) -> list[list[Button]]:
    """One button per suggestion that re-runs the command with that project's exact id."""
    row = []
    for project in error.suggestions[:_MAX_SUGGESTIONS]:
        arg = project.id
        if spec is not None:
            arg = f"{project.id}:{spec.kind}" + (
                f":{_level_text(spec.level)}" if spec.level is not None else ""
            )
        button = Button(project.display, action, arg)
        if len(button.data.encode()) <= _CALLBACK_LIMIT:
            row.append(button)
    return [row] if row else []


async def _refuse(
    context: ContextTypes.DEFAULT_TYPE,
    chat_id: int,
    error: WatchError,
    action: str,
    loc: Localizer,
    spec: AlertSpec | None = None,
) -> None:
    """A service refusal as the user sees it: a limit (the service's sentence names it) with
    Upgrade, suggestions as buttons."""
    if isinstance(error, LimitReached):
        await _say(
            context,
            chat_id,
            error.text(loc),
            buttons=[[upgrade_button(loc)]] if error.tier == "free" else None,
        )
        return
    if isinstance(error, UnknownProject):
        # The sentence names the suggestions ("Did you mean: …?"); the buttons pick one.
        await _say(
            context, chat_id, error.text(loc), buttons=_suggestion_buttons(error, action, spec)
        )
        return
    await _say(context, chat_id, error.text(loc))


# --- watchlist --------------------------------------------------------------------------------


async def _watch(
    context: ContextTypes.DEFAULT_TYPE,
    chat_id: int,
    identity: str,
    query: str,
    loc: Localizer,
    *,
    remove: bool,
) -> None:
    deps = _deps(context)
    account = await account_for_identity(deps, identity)
    try:
        if remove:
            project, changed = await unwatch(deps, account.id, query)
        else:
            project, changed = await watch(deps, account.id, query)
    except WatchError as exc:
        await _refuse(context, chat_id, exc, "unwatch" if remove else "watch", loc)
        return
    if remove:
        text = (
            loc._("Removed {project} from your watchlist.")
            if changed
            else loc._("{project} is not on your watchlist.")
        )
    else:
        text = (
            loc._("👀 Added {project} to your watchlist. /watchlist shows it all.")
            if changed
            else loc._("{project} is already on your watchlist.")
        )
    await _say(context, chat_id, text.format(project=project.display))


async def watch_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/watch <project>: add a project to the account's watchlist."""
    query = " ".join(context.args or [])
    loc = await loc_of(update, context)
    if not query:
        await _say(context, _chat_id(update), loc._(WATCH_USAGE))
        return
    await _watch(context, _chat_id(update), identity_of(update), query, loc, remove=False)


async def unwatch_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/unwatch <project>: remove a project from the account's watchlist."""
    query = " ".join(context.args or [])
    loc = await loc_of(update, context)
    if not query:
        await _say(context, _chat_id(update), loc._(UNWATCH_USAGE))
        return
    await _watch(context, _chat_id(update), identity_of(update), query, loc, remove=True)


async def watchlist_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/watchlist: the account's watched projects, oldest first."""
    deps = _deps(context)
    account = await account_for_identity(deps, identity_of(update))
    loc = await loc_of(update, context)
    items = await watchlist(deps, account.id)
    if not items:
        await _say(
            context,
            _chat_id(update),
            loc._("Your watchlist is empty. Add a project with /watch, for example /watch ETH"),
        )
        return
    lines = [loc._("👀 Your watchlist ({count}):").format(count=len(items))]
    lines += [f"• {item.display}" for item in items]
    lines.append(
        "\n" + loc._("/unwatch <project> removes one; /alert <project> above 70000 sets an alert.")
    )
    await _say(context, _chat_id(update), "\n".join(lines))


# --- alerts -----------------------------------------------------------------------------------


async def _may_post_here(
    context: ContextTypes.DEFAULT_TYPE, message: Message, presser_id: int | None = None
) -> bool:
    """Alerts post in the chat they were set in: in a group only its admins may set one."""
    if presser_id is not None and message.chat.type != ChatType.PRIVATE:
        return await is_member_admin(context.bot, message.chat.id, presser_id)
    return await is_chat_admin(context.bot, message)


_NOT_ADMIN = N_(
    "Only this chat's admins can set alerts that post here. Send /alert to me in a "
    "private chat to get alerts there."
)


async def _create(
    context: ContextTypes.DEFAULT_TYPE,
    chat_id: int,
    identity: str,
    query: str,
    spec: AlertSpec,
    loc: Localizer,
) -> None:
    deps = _deps(context)
    account = await account_for_identity(deps, identity)
    try:
        alert = await create_alert(
            deps, account.id, query, spec, channel="telegram", destination=str(chat_id)
        )
    except WatchError as exc:
        await _refuse(context, chat_id, exc, "alert", loc, spec)
        return
    await _say(
        context,
        chat_id,
        loc._(
            "🔔 Alert set: {alert}.\nIt posts in this chat once per crossing. /alerts "
            "lists your alerts; /alert delete {id} removes it."
        ).format(alert=describe(alert, loc), id=alert.id),
    )


async def alert_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/alert <project> <condition>, /alert delete <id>, /alert list."""
    message = update.effective_message
    assert message is not None
    chat_id = message.chat.id
    args = context.args or []
    loc = await loc_of(update, context)
    if not args:
        await _say(context, chat_id, loc._(ALERT_USAGE))
        return
    first = args[0].lower()
    if first in _DELETE_WORDS and len(args) <= 2:
        await _delete(context, chat_id, identity_of(update), args[1] if len(args) == 2 else "", loc)
        return
    if first == "list" and len(args) == 1:
        await alerts_command(update, context)
        return
    try:
        query, spec = parse_alert(" ".join(args))
    except WatchError as exc:
        await _say(context, chat_id, exc.text(loc))
        return
    if not await _may_post_here(context, message):
        await _say(context, chat_id, loc._(_NOT_ADMIN))
        return
    await _create(context, chat_id, identity_of(update), query, spec, loc)


def _listed(alert: Alert, chat_id: int, loc: Localizer) -> str:
    """`describe()` names "this chat" as the destination: right for alerts set here, so an
    alert that posts elsewhere says where instead."""
    text = describe(alert, loc)
    if alert.channel == "telegram" and alert.destination == str(chat_id):
        return text
    where = {
        "telegram": loc._("another Telegram chat"),
        "discord": "Discord",
        "email": alert.destination,
    }.get(alert.channel, alert.channel)
    return f"{text.rsplit(' → ', 1)[0]} → {where}"


async def alerts_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/alerts: the account's alerts with their ids, each with a delete button."""
    deps = _deps(context)
    chat_id = _chat_id(update)
    account = await account_for_identity(deps, identity_of(update))
    loc = await loc_of(update, context)
    alerts = await alerts_of(deps, account.id)
    if not alerts:
        await _say(
            context,
            chat_id,
            loc._("You have no alerts. Set one with /alert, for example /alert BTC above 70000"),
        )
        return
    lines = [loc._("🔔 Your alerts ({count}):").format(count=len(alerts))]
    fired = " " + loc._("(fired; re-arms once the condition clears)")
    lines.extend(
        f"• {_listed(alert, chat_id, loc)}{'' if alert.armed else fired}" for alert in alerts
    )
    lines.append("\n" + loc._("/alert delete <id> removes one, or press its button."))
    buttons = [
        Button(loc._("🗑 Delete {id}").format(id=a.id), "alertdel", str(a.id)) for a in alerts
    ]
    rows = [buttons[i : i + 3] for i in range(0, len(buttons), 3)]
    await _say(context, chat_id, "\n".join(lines), buttons=rows)


async def _delete(
    context: ContextTypes.DEFAULT_TYPE, chat_id: int, identity: str, raw_id: str, loc: Localizer
) -> None:
    alert_id = raw_id.lstrip("#")
    if not re.fullmatch(r"[0-9]{1,18}", alert_id):
        await _say(context, chat_id, loc._(DELETE_USAGE))
        return
    deps = _deps(context)
    account = await account_for_identity(deps, identity)
    if await delete_alert(deps, account.id, int(alert_id)):
        await _say(context, chat_id, loc._("Deleted alert {id}.").format(id=alert_id))
    else:
        await _say(
            context,
            chat_id,
            loc._("You have no alert {id}. /alerts lists your alerts with their ids.").format(
                id=alert_id
            ),
        )


# --- buttons ----------------------------------------------------------------------------------

_ALERT_ARG = re.compile(
    r"(?P<project>[^:]+):(?P<kind>above|below|move|risk|sentiment)"
    r"(?::(?P<level>[0-9]{1,20}(?:\.[0-9]{1,20})?))?"
)


async def button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A suggestion (watch/unwatch/alert with the exact project id) or an alert's delete."""
    query = update.callback_query
    assert query is not None
    action, _, arg = (query.data or "").partition(":")
    message = query.message
    alert_arg = _ALERT_ARG.fullmatch(arg) if action == "alert" else None
    loc = await loc_of(update, context)
    if not isinstance(message, Message) or not arg or (action == "alert" and alert_arg is None):
        await query.answer(loc._("This button no longer works; please send the command again."))
        return
    await query.answer()
    identity = identity_of(update)
    chat_id = message.chat.id
    if action in ("watch", "unwatch"):
        await _watch(context, chat_id, identity, arg, loc, remove=action == "unwatch")
    elif action == "alertdel":
        await _delete(context, chat_id, identity, arg, loc)
    else:
        assert alert_arg is not None
        level = alert_arg["level"]
        try:
            _, spec = parse_alert(
                f"{alert_arg['project']} {alert_arg['kind']}"
                + (f" {level}{'%' if alert_arg['kind'] == 'move' else ''}" if level else "")
            )
        except WatchError as exc:
            await _say(context, chat_id, exc.text(loc))
            return
        if not await _may_post_here(context, message, presser_id=query.from_user.id):
            await _say(context, chat_id, loc._(_NOT_ADMIN))
            return
        await _create(context, chat_id, identity, alert_arg["project"], spec, loc)
