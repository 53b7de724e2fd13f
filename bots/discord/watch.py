"""Watchlist and alert slash commands: `/watch`, `/unwatch`, `/watchlist`, `/alerts` and the
`/alert add|list|delete` group.

Parsing and rendering only: the watchlist, the alerts, their limits and project resolution
are `reports.watch`. Every reply is ephemeral (personal, like /usage). An alert is delivered
where it was set: in the bot's DM with the user, or in a server channel of a server that
added ChainLens. Setting one in a server channel needs the Manage Channels permission there
(the alert will post in that channel); members without it are told to set it in a DM with
the bot, where it is delivered to them alone. Group DMs and servers without the bot cannot
receive alerts, so `/alert add` is refused there.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import discord
from discord import app_commands

from billing.accounts import account_for_identity
from billing.checkout_link import checkout_link
from bots.discord.answer import identity_of
from bots.discord.commands import PROJECT_OPTION, loc_of, reply_privately, report_error
from bots.discord.projects import MAX_CHOICES, project_choices
from bots.discord.views import upgrade_view
from chainlens.deps import Deps
from chainlens.i18n import N_, Localizer
from reports.watch import (
    Alert,
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

if TYPE_CHECKING:
    from bots.discord.client import ChainLensDiscord

_CHOICE_NAME_LIMIT = 100
CONDITIONS: tuple[app_commands.Choice[str], ...] = (
    app_commands.Choice(name=N_("price above (level: USD)"), value="above"),
    app_commands.Choice(name=N_("price below (level: USD)"), value="below"),
    app_commands.Choice(name=N_("24 h move of ±level %"), value="move"),
    app_commands.Choice(name=N_("new contract risk flag"), value="risk"),
    app_commands.Choice(name=N_("sentiment swing (level: points, default 20)"), value="sentiment"),
)
_NEEDS_LEVEL = {
    "above": N_("a price in USD, e.g. 70000"),
    "below": N_("a price in USD, e.g. 3000"),
    "move": N_("a percentage, e.g. 10"),
}
NOT_HERE = N_(
    "I can only post alerts in a DM with me or in a server that added ChainLens. "
    "Set the alert in a DM with me to get it there."
)
NEEDS_MANAGE_CHANNELS = N_(
    "Alerts set here post in this channel, which needs the Manage "
    "Channels permission. Set the alert in a DM with me to get it "
    "there."
)


def _deps(interaction: discord.Interaction[Any]) -> Deps:
    return cast("ChainLensDiscord", interaction.client).deps


async def _account_id(interaction: discord.Interaction[Any]) -> int:
    account = await account_for_identity(_deps(interaction), identity_of(interaction.user))
    return account.id


async def _refuse(
    interaction: discord.Interaction[Any],
    account_id: int,
    error: WatchError,
    loc: Localizer,
    *,
    action: str = "watch",
    alert: tuple[str, float | None] | None = None,
) -> None:
    """A service refusal: a limit (the service's sentence names it) with the Upgrade button;
    an unknown project with a button per suggestion that redoes the command with it."""
    if isinstance(error, LimitReached):
        view = (
            upgrade_view(checkout_link(_deps(interaction).settings, account_id), loc)
            if error.tier == "free"
            else None
        )
        await reply_privately(interaction, error.text(loc), view=view)
        return
    if isinstance(error, UnknownProject) and error.suggestions:
        view = discord.ui.View(timeout=None)
        for project in error.suggestions[:_MAX_SUGGESTIONS]:
            kind, level = alert if alert is not None else (None, None)
            custom_id = suggestion_id("alert" if alert else action, project.id, kind, level)
            if custom_id is not None:
                view.add_item(SuggestionButton(custom_id, project.display))
        await reply_privately(interaction, error.text(loc), view=view if view.children else None)
        return
    await reply_privately(interaction, error.text(loc))


# "watch:<id>", "unwatch:<id>", "alert:<id>:<kind>[:<level>]" (a suggestion pressed instead).
_SUGGESTION_ID = (
    r"(?P<action>watch|unwatch|alert):(?P<project>[a-z0-9][a-z0-9._-]{0,80})"
    r"(?::(?P<kind>above|below|move|risk|sentiment)"
    r"(?::(?P<level>[0-9]{1,20}(?:\.[0-9]{1,20})?))?)?"
)
_CUSTOM_ID_LIMIT = 100
_MAX_SUGGESTIONS = 5


def suggestion_id(
    action: str, project_id: str, kind: str | None = None, level: float | None = None
) -> str | None:
    """The custom id of a suggestion button; None when it cannot carry the command."""
    custom_id = f"{action}:{project_id}"
    if kind is not None:
        custom_id += f":{kind}" + (f":{level_text(level)}" if level is not None else "")
    if len(custom_id) > _CUSTOM_ID_LIMIT or not re.fullmatch(_SUGGESTION_ID, custom_id):
        return None
    return custom_id


class SuggestionButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=_SUGGESTION_ID):
    """A did-you-mean suggestion for /watch, /unwatch or /alert add: the command again with
    that project's exact id. The command lives in the custom id, so it survives restarts."""

    def __init__(self, custom_id: str, label: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=label[:80] or None,
                emoji="🔎",
                style=discord.ButtonStyle.secondary,
                custom_id=custom_id,
            )
        )
        match = re.fullmatch(_SUGGESTION_ID, custom_id)
        assert match is not None, custom_id
        self.action: str = match["action"]
        self.project_id: str = match["project"]
        self.kind: str | None = match["kind"]
        self.level = float(match["level"]) if match["level"] else None

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> SuggestionButton:
        return cls(match.group(0), getattr(item, "label", None) or "")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            if self.action == "alert":
                if self.kind is None:
                    await interaction.response.defer(ephemeral=True)
                    loc = await loc_of(interaction)
                    await reply_privately(
                        interaction, loc._("This button no longer works; use /alert add again.")
                    )
                    return
                await add_alert(interaction, self.project_id, self.kind, self.level)
            else:
                await watch_project(interaction, self.project_id, remove=self.action == "unwatch")
        except Exception as exc:  # noqa: BLE001 - buttons bypass the tree: same handler as it
            await report_error(interaction, exc)


def level_text(level: float) -> str:
    """A level as plain digits (never `1e+06`), the way `parse_alert` reads numbers."""
    return format(Decimal(repr(level)).normalize(), "f")


def listed(alert: Alert, channel_id: int | None, loc: Localizer) -> str:
    """`describe()` names "this chat" as the destination: right for alerts posting here; an
    alert that posts elsewhere says where instead."""
    text = describe(alert, loc)
    if alert.channel == "discord" and alert.destination == str(channel_id):
        return text
    where = {
        "discord": loc._("another Discord channel"),
        "telegram": "Telegram",
        "email": alert.destination,
    }.get(alert.channel, alert.channel)
    return f"{text.rsplit(' → ', 1)[0]} → {where}"


def alert_destination(interaction: discord.Interaction[Any]) -> str | None:
    """Where an alert set by this interaction posts, or None (with why in `refusal_of`)."""
    if interaction.guild_id is None:
        return str(interaction.channel_id) if interaction.context.dm_channel else None
    if not interaction.is_guild_integration() or not interaction.permissions.manage_channels:
        return None
    return str(interaction.channel_id)


def refusal_of(interaction: discord.Interaction[Any], loc: Localizer) -> str:
    if interaction.guild_id is not None and interaction.is_guild_integration():
        return loc._(NEEDS_MANAGE_CHANNELS)
    return loc._(NOT_HERE)


# --- autocomplete -----------------------------------------------------------------------------


async def autocomplete_project(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    return await project_choices(_deps(interaction), current)


async def autocomplete_watched(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """/unwatch: the user's own watchlist, filtered by what they typed."""
    deps = _deps(interaction)
    items = await watchlist(deps, await _account_id(interaction))
    typed = current.strip().lstrip("$").lower()
    return [
        app_commands.Choice(name=item.display[:_CHOICE_NAME_LIMIT], value=item.project_id)
        for item in items
        if typed in item.display.lower() or typed in item.project_id
    ][:MAX_CHOICES]


async def autocomplete_alert(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[int]]:
    """/alert delete: the user's alerts, filtered by what they typed."""
    alerts = await alerts_of(_deps(interaction), await _account_id(interaction))
    loc = await loc_of(interaction)
    typed = current.strip().lstrip("#").lower()
    names = [(a, listed(a, interaction.channel_id, loc)) for a in alerts]
    return [
        app_commands.Choice(name=name[:_CHOICE_NAME_LIMIT], value=a.id)
        for a, name in names
        if typed in name.lower()
    ][:MAX_CHOICES]


# --- the commands -----------------------------------------------------------------------------


async def watch_project(
    interaction: discord.Interaction[Any], project: str, *, remove: bool
) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    deps = _deps(interaction)
    account_id = await _account_id(interaction)
    loc = await loc_of(interaction)
    try:
        if remove:
            found, changed = await unwatch(deps, account_id, project)
        else:
            found, changed = await watch(deps, account_id, project)
    except WatchError as exc:
        await _refuse(interaction, account_id, exc, loc, action="unwatch" if remove else "watch")
        return
    if remove:
        text = (
            loc._("Removed **{project}** from your watchlist.")
            if changed
            else loc._("**{project}** is not on your watchlist.")
        )
    else:
        text = (
            loc._("👀 Added **{project}** to your watchlist. `/watchlist` shows it all.")
            if changed
            else loc._("**{project}** is already on your watchlist.")
        )
    await reply_privately(interaction, text.format(project=found.display))


async def show_watchlist(interaction: discord.Interaction[Any]) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    items = await watchlist(_deps(interaction), await _account_id(interaction))
    loc = await loc_of(interaction)
    if not items:
        await reply_privately(
            interaction, loc._("Your watchlist is empty. Add a project with `/watch`.")
        )
        return
    lines = [
        loc._("👀 **Your watchlist** ({count}):").format(count=len(items)),
        *(f"• {i.display}" for i in items),
        "",
        loc._("`/unwatch` removes one; `/alert add` sets an alert."),
    ]
    await reply_privately(interaction, "\n".join(lines))


async def show_alerts(interaction: discord.Interaction[Any]) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    alerts = await alerts_of(_deps(interaction), await _account_id(interaction))
    loc = await loc_of(interaction)
    if not alerts:
        await reply_privately(
            interaction,
            loc._(
                "You have no alerts. Set one with `/alert add`, e.g. project: "
                "BTC, condition: price above, level: 70000."
            ),
        )
        return
    lines = [loc._("🔔 **Your alerts** ({count}):").format(count=len(alerts))]
    fired = " " + loc._("(fired; re-arms once the condition clears)")
    lines.extend(
        f"• {listed(alert, interaction.channel_id, loc)}{'' if alert.armed else fired}"
        for alert in alerts
    )
    lines += ["", loc._("`/alert delete id:` removes one.")]
    await reply_privately(interaction, "\n".join(lines))


async def add_alert(
    interaction: discord.Interaction[Any], project: str, kind: str, level: float | None
) -> None:
    """Set an alert that posts where this interaction happened (if it may post there)."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    loc = await loc_of(interaction)
    if kind in _NEEDS_LEVEL and level is None:
        name = loc._(next(c.name for c in CONDITIONS if c.value == kind))
        await reply_privately(
            interaction,
            loc._("Give the level for “{condition}”: {example}.").format(
                condition=name, example=loc._(_NEEDS_LEVEL[kind])
            ),
        )
        return
    destination = alert_destination(interaction)
    if destination is None:
        await reply_privately(interaction, refusal_of(interaction, loc))
        return
    text = f"project {kind}"  # the service's parser validates the condition and the level
    if level is not None and kind != "risk":
        text += f" {level_text(level)}" + ("%" if kind == "move" else "")
    account_id = await _account_id(interaction)
    try:
        _, spec = parse_alert(text)
        alert = await create_alert(
            _deps(interaction),
            account_id,
            project,
            spec,
            channel="discord",
            destination=destination,
        )
    except WatchError as exc:
        await _refuse(interaction, account_id, exc, loc, alert=(kind, level))
        return
    if interaction.guild_id is None:
        text = loc._(
            "🔔 Alert set: {alert}.\nIt posts in our DM once per crossing. "
            "`/alert delete id:{id}` removes it."
        )
    else:
        text = loc._(
            "🔔 Alert set: {alert}.\nIt posts in this channel once per crossing. "
            "`/alert delete id:{id}` removes it."
        )
    await reply_privately(interaction, text.format(alert=describe(alert, loc), id=alert.id))


class AlertCommands(app_commands.Group):
    """/alert add|list|delete."""

    def __init__(self) -> None:
        super().__init__(name="alert", description=N_("Price, move, risk and sentiment alerts"))

    @app_commands.command(
        name="add", description=N_("Alert me here when a project crosses a level")
    )
    @app_commands.describe(
        project=PROJECT_OPTION,
        condition=N_("When the alert fires"),
        level=N_("USD for above/below, % for a move, points for sentiment (default 20)"),
    )
    @app_commands.autocomplete(project=autocomplete_project)
    @app_commands.choices(condition=list(CONDITIONS))
    async def add(
        self,
        interaction: discord.Interaction[Any],
        project: app_commands.Range[str, 1, 100],
        condition: app_commands.Choice[str],
        level: app_commands.Range[float, 0.0, 1e15] | None = None,
    ) -> None:
        await add_alert(interaction, project, condition.value, level)

    @app_commands.command(name="list", description=N_("Your alerts and their ids"))
    async def list_(self, interaction: discord.Interaction[Any]) -> None:
        await show_alerts(interaction)

    @app_commands.command(name="delete", description=N_("Delete one of your alerts"))
    @app_commands.describe(id=N_("The alert's id (see /alerts)"))
    @app_commands.autocomplete(id=autocomplete_alert)
    async def delete(
        self, interaction: discord.Interaction[Any], id: app_commands.Range[int, 1, 2**53]
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        loc = await loc_of(interaction)
        if await delete_alert(_deps(interaction), await _account_id(interaction), id):
            await reply_privately(interaction, loc._("Deleted alert #{id}.").format(id=id))
        else:
            await reply_privately(
                interaction, loc._("You have no alert #{id}. `/alerts` lists yours.").format(id=id)
            )


def add_watch_commands(tree: app_commands.CommandTree[Any]) -> None:
    """Register /watch, /unwatch, /watchlist, /alerts and the /alert group on the tree."""

    @tree.command(name="watch", description=N_("Add a project to your watchlist"))
    @app_commands.describe(project=PROJECT_OPTION)
    @app_commands.autocomplete(project=autocomplete_project)
    async def watch_command(
        interaction: discord.Interaction[Any], project: app_commands.Range[str, 1, 100]
    ) -> None:
        await watch_project(interaction, project, remove=False)

    @tree.command(name="unwatch", description=N_("Remove a project from your watchlist"))
    @app_commands.describe(project=N_("A project on your watchlist"))
    @app_commands.autocomplete(project=autocomplete_watched)
    async def unwatch_command(
        interaction: discord.Interaction[Any], project: app_commands.Range[str, 1, 100]
    ) -> None:
        await watch_project(interaction, project, remove=True)

    @tree.command(name="watchlist", description=N_("Your watchlist"))
    async def watchlist_command(interaction: discord.Interaction[Any]) -> None:
        await show_watchlist(interaction)

    @tree.command(name="alerts", description=N_("Your alerts and their ids"))
    async def alerts_command(interaction: discord.Interaction[Any]) -> None:
        await show_alerts(interaction)

    tree.add_command(AlertCommands())
