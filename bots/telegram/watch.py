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
from bots.render import Button
from bots.telegram.chats import identity_of, is_chat_admin, is_member_admin
from bots.telegram.delivery import send_markdown
from chainlens.deps import Deps
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

WATCH_USAGE = "Usage: /watch <project>, for example /watch ETH"
UNWATCH_USAGE = "Usage: /unwatch <project>, for example /unwatch ETH"
ALERT_USAGE = (
    "Usage: /alert <project> <condition>, for example /alert BTC above 70000\n"
    "Conditions: above 70000 · below 3000 · move 10% (in 24 h) · risk (a new contract risk "
    "flag) · sentiment (a sentiment swing)\n"
    "/alerts lists your alerts with their ids; /alert delete <id> removes one.")
DELETE_USAGE = "Usage: /alert delete <id>, for example /alert delete 12 (/alerts shows the ids)"
_DELETE_WORDS = {"delete", "del", "remove", "rm"}
_CALLBACK_LIMIT = 64
_MAX_SUGGESTIONS = 4
CALLBACK_PATTERN = r"^(watch|unwatch|alert|alertdel):"


def _deps(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    deps: Deps = context.application.bot_data["deps"]
    return deps


async def _say(context: ContextTypes.DEFAULT_TYPE, chat_id: int, markdown: str, *,
               buttons: list[list[Button]] | None = None) -> None:
    await send_markdown(context.bot, chat_id, markdown, buttons=buttons or [])


def _chat_id(update: Update) -> int:
    assert update.effective_chat is not None
    return update.effective_chat.id


def _level_text(level: float | None) -> str:
    """A level as plain digits (never `1e+06`), the way `parse_alert` reads numbers."""
    return "" if level is None else format(Decimal(repr(level)).normalize(), "f")


def _suggestion_buttons(error: UnknownProject, action: str,
                        spec: AlertSpec | None) -> list[list[Button]]:
    """One button per suggestion that re-runs the command with that project's exact id."""
    row = []
    for project in error.suggestions[:_MAX_SUGGESTIONS]:
        arg = project.id
        if spec is not None:
            arg = f"{project.id}:{spec.kind}" + (
                f":{_level_text(spec.level)}" if spec.level is not None else "")
        button = Button(project.display, action, arg)
        if len(button.data.encode()) <= _CALLBACK_LIMIT:
            row.append(button)
    return [row] if row else []


def _limit_text(error: LimitReached) -> str:
    """The service's sentence, which names the limit (added here if it ever does not)."""
    if str(error.limit) in error.message:
        return error.message
    what = "watchlist items" if error.kind == "watchlist" else "alerts"
    return f"{error.message} The {error.tier} plan allows {error.limit} {what}."


async def _refuse(context: ContextTypes.DEFAULT_TYPE, chat_id: int, error: WatchError,
                  action: str, spec: AlertSpec | None = None) -> None:
    """A service refusal as the user sees it: a limit with Upgrade, suggestions as buttons."""
    if isinstance(error, LimitReached):
        await _say(context, chat_id, _limit_text(error),
                   buttons=[[Button("⭐ Upgrade", "upgrade")]] if error.tier == "free" else None)
        return
    if isinstance(error, UnknownProject):
        buttons = _suggestion_buttons(error, action, spec)
        text = error.message
        if buttons and "mean" not in text.lower():
            text += " Did you mean one of these?"
        await _say(context, chat_id, text, buttons=buttons)
        return
    await _say(context, chat_id, error.message)


# --- watchlist --------------------------------------------------------------------------------

async def _watch(context: ContextTypes.DEFAULT_TYPE, chat_id: int, identity: str, query: str,
                 *, remove: bool) -> None:
    deps = _deps(context)
    account = await account_for_identity(deps, identity)
    try:
        if remove:
            project, changed = await unwatch(deps, account.id, query)
        else:
            project, changed = await watch(deps, account.id, query)
    except WatchError as exc:
        await _refuse(context, chat_id, exc, "unwatch" if remove else "watch")
        return
    if remove:
        text = (f"Removed {project.display} from your watchlist." if changed
                else f"{project.display} is not on your watchlist.")
    else:
        text = (f"👀 Added {project.display} to your watchlist. /watchlist shows it all."
                if changed else f"{project.display} is already on your watchlist.")
    await _say(context, chat_id, text)


async def watch_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/watch <project>: add a project to the account's watchlist."""
    query = " ".join(context.args or [])
    if not query:
        await _say(context, _chat_id(update), WATCH_USAGE)
        return
    await _watch(context, _chat_id(update), identity_of(update), query, remove=False)


async def unwatch_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/unwatch <project>: remove a project from the account's watchlist."""
    query = " ".join(context.args or [])
    if not query:
        await _say(context, _chat_id(update), UNWATCH_USAGE)
        return
    await _watch(context, _chat_id(update), identity_of(update), query, remove=True)


async def watchlist_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/watchlist: the account's watched projects, oldest first."""
    deps = _deps(context)
    account = await account_for_identity(deps, identity_of(update))
    items = await watchlist(deps, account.id)
    if not items:
        await _say(context, _chat_id(update),
                   "Your watchlist is empty. Add a project with /watch, for example /watch ETH")
        return
    lines = [f"👀 Your watchlist ({len(items)}):"]
    lines += [f"• {item.display}" for item in items]
    lines.append("\n/unwatch <project> removes one; /alert <project> above 70000 sets an alert.")
    await _say(context, _chat_id(update), "\n".join(lines))


# --- alerts -----------------------------------------------------------------------------------

async def _may_post_here(context: ContextTypes.DEFAULT_TYPE, message: Message,
                         presser_id: int | None = None) -> bool:
    """Alerts post in the chat they were set in: in a group only its admins may set one."""
    if presser_id is not None and message.chat.type != ChatType.PRIVATE:
        return await is_member_admin(context.bot, message.chat.id, presser_id)
    return await is_chat_admin(context.bot, message)


_NOT_ADMIN = ("Only this chat's admins can set alerts that post here. Send /alert to me in a "
              "private chat to get alerts there.")


async def _create(context: ContextTypes.DEFAULT_TYPE, chat_id: int, identity: str, query: str,
                  spec: AlertSpec) -> None:
    deps = _deps(context)
    account = await account_for_identity(deps, identity)
    try:
        alert = await create_alert(deps, account.id, query, spec, channel="telegram",
                                   destination=str(chat_id))
    except WatchError as exc:
        await _refuse(context, chat_id, exc, "alert", spec)
        return
    await _say(context, chat_id,
               f"🔔 Alert set: {describe(alert)}.\nIt posts in this chat once per crossing. "
               f"/alerts lists your alerts; /alert delete {alert.id} removes it.")


async def alert_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/alert <project> <condition>, /alert delete <id>, /alert list."""
    message = update.effective_message
    assert message is not None
    chat_id = message.chat.id
    args = context.args or []
    if not args:
        await _say(context, chat_id, ALERT_USAGE)
        return
    first = args[0].lower()
    if first in _DELETE_WORDS and len(args) <= 2:
        await _delete(context, chat_id, identity_of(update), args[1] if len(args) == 2 else "")
        return
    if first == "list" and len(args) == 1:
        await alerts_command(update, context)
        return
    try:
        query, spec = parse_alert(" ".join(args))
    except WatchError as exc:
        await _say(context, chat_id, exc.message)
        return
    if not await _may_post_here(context, message):
        await _say(context, chat_id, _NOT_ADMIN)
        return
    await _create(context, chat_id, identity_of(update), query, spec)


def _listed(alert: Alert, chat_id: int) -> str:
    """`describe()` names "this chat" as the destination: right for alerts set here, so an
    alert that posts elsewhere says where instead."""
    text = describe(alert)
    if alert.channel == "telegram" and alert.destination == str(chat_id):
        return text
    where = {"telegram": "another Telegram chat", "discord": "Discord",
             "email": alert.destination}.get(alert.channel, alert.channel)
    return f"{text.rsplit(' → ', 1)[0]} → {where}"


async def alerts_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/alerts: the account's alerts with their ids, each with a delete button."""
    deps = _deps(context)
    chat_id = _chat_id(update)
    account = await account_for_identity(deps, identity_of(update))
    alerts = await alerts_of(deps, account.id)
    if not alerts:
        await _say(context, chat_id,
                   "You have no alerts. Set one with /alert, for example /alert BTC above 70000")
        return
    lines = [f"🔔 Your alerts ({len(alerts)}):"]
    for alert in alerts:
        state = "" if alert.armed else " (fired; re-arms once the condition clears)"
        lines.append(f"• {_listed(alert, chat_id)}{state}")
    lines.append("\n/alert delete <id> removes one, or press its button.")
    buttons = [Button(f"🗑 Delete {a.id}", "alertdel", str(a.id)) for a in alerts]
    rows = [buttons[i:i + 3] for i in range(0, len(buttons), 3)]
    await _say(context, chat_id, "\n".join(lines), buttons=rows)


async def _delete(context: ContextTypes.DEFAULT_TYPE, chat_id: int, identity: str,
                  raw_id: str) -> None:
    alert_id = raw_id.lstrip("#")
    if not re.fullmatch(r"[0-9]{1,18}", alert_id):
        await _say(context, chat_id, DELETE_USAGE)
        return
    deps = _deps(context)
    account = await account_for_identity(deps, identity)
    if await delete_alert(deps, account.id, int(alert_id)):
        await _say(context, chat_id, f"Deleted alert {alert_id}.")
    else:
        await _say(context, chat_id,
                   f"You have no alert {alert_id}. /alerts lists your alerts with their ids.")


# --- buttons ----------------------------------------------------------------------------------

_ALERT_ARG = re.compile(r"(?P<project>[^:]+):(?P<kind>above|below|move|risk|sentiment)"
                        r"(?::(?P<level>[0-9]{1,20}(?:\.[0-9]{1,20})?))?")


async def button_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A suggestion (watch/unwatch/alert with the exact project id) or an alert's delete."""
    query = update.callback_query
    assert query is not None
    action, _, arg = (query.data or "").partition(":")
    message = query.message
    alert_arg = _ALERT_ARG.fullmatch(arg) if action == "alert" else None
    if not isinstance(message, Message) or not arg or (action == "alert" and alert_arg is None):
        await query.answer("This button no longer works; please send the command again.")
        return
    await query.answer()
    identity = identity_of(update)
    chat_id = message.chat.id
    if action in ("watch", "unwatch"):
        await _watch(context, chat_id, identity, arg, remove=action == "unwatch")
    elif action == "alertdel":
        await _delete(context, chat_id, identity, arg)
    else:
        assert alert_arg is not None
        level = alert_arg["level"]
        try:
            _, spec = parse_alert(f"{alert_arg['project']} {alert_arg['kind']}"
                                  + (f" {level}{'%' if alert_arg['kind'] == 'move' else ''}"
                                     if level else ""))
        except WatchError as exc:
            await _say(context, chat_id, exc.message)
            return
        if not await _may_post_here(context, message, presser_id=query.from_user.id):
            await _say(context, chat_id, _NOT_ADMIN)
            return
        await _create(context, chat_id, identity, alert_arg["project"], spec)
