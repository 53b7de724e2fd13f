"""The slash commands, their autocomplete, the follow-up buttons' runner and the one error
handler, all registered in `build_tree()`.

Every command that touches the database or the network defers first (Discord allows 3 s
for the first response), then follows up. `/usage`, `/upgrade`, `/link` and refusals are
ephemeral, like every watchlist and alert command (bots/discord/watch.py). Commands work in
servers, in DMs with the bot and, installed to a user, in any DM or group DM
(`allowed_installs` / `allowed_contexts`); `/alpha` needs the bot in the channel to deliver
the report, so it is offered in servers and the bot's DMs only.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any, cast

import discord
from discord import app_commands

from agent import MAX_QUESTION_CHARS
from billing.accounts import (
    account_for_identity,
    create_link_code,
    redeem_link_code,
    set_language,
)
from billing.checkout_link import checkout_link
from billing.errors import InvalidIdentity, LinkCodeInvalid
from billing.quota import quota_status
from bots.discord.answer import answer_question, identity_of, language_hint, language_of
from bots.discord.projects import project_choices, project_question
from bots.discord.send import InteractionReply, destination_of
from bots.discord.views import Aspect, upgrade_view
from bots.language import (
    AUTO_LABEL,
    LANGUAGE_NAMES,
    choice_set_text,
    current_choice_text,
    parse_choice,
)
from bots.render import HELP_TEXT
from chainlens.i18n import N_, Localizer, localizer
from reports.subscriptions import get_subscription, subscribe, unsubscribe

if TYPE_CHECKING:
    from bots.discord.client import ChainLensDiscord

log = logging.getLogger(__name__)

# The planner's words that pick exactly that tool (the same as the Telegram bot's).
ASPECT_QUESTIONS: dict[str, str] = {
    "research": "Research {project}",
    "price": "{project} price and market data",
    "sentiment": "{project} sentiment",
    "tokenomics": "{project} tokenomics",
    "team": "{project} team and developers",
    "chart": "{project} price chart",
}


PROJECT_OPTION = N_("Name, ticker or contract address, e.g. Uniswap, $PEPE")


def _client(interaction: discord.Interaction[Any]) -> ChainLensDiscord:
    return cast("ChainLensDiscord", interaction.client)


async def loc_of(interaction: discord.Interaction[Any]) -> Localizer:
    """The localizer for a reply to a command (after deferring: it reads the saved choice)."""
    return (await language_of(interaction, _client(interaction).deps)).loc()


async def reply_privately(
    interaction: discord.Interaction[Any], content: str, *, view: discord.ui.View | None = None
) -> None:
    """An ephemeral follow-up to a deferred interaction, through the send limiter."""
    kwargs: dict[str, Any] = {"content": content, "ephemeral": True}
    if view is not None:
        kwargs["view"] = view
    await InteractionReply(interaction, _client(interaction).limiter).followup(**kwargs)


async def ask(interaction: discord.Interaction[Any], question: str) -> None:
    """Defer (public, "thinking"), then answer as a charged question."""
    await interaction.response.defer(thinking=True)
    client = _client(interaction)
    await answer_question(interaction, client.deps, client.limiter, question)


async def run_follow_up(
    interaction: discord.Interaction[Any], aspect: Aspect, project_id: str
) -> None:
    """A pressed follow-up button: a new message answering a new (charged) question."""
    try:
        await interaction.response.defer(thinking=True)
        await ask_aspect_deferred(interaction, aspect, project_id, own_words="")
    except Exception as exc:  # noqa: BLE001 - buttons bypass the tree: same handler as it
        await report_error(interaction, exc)


async def ask_aspect_deferred(
    interaction: discord.Interaction[Any], aspect: str, project: str, *, own_words: str
) -> None:
    """Our English question about `project`; its language comes from `own_words` (what the
    user typed: the project option, or nothing for a button)."""
    client = _client(interaction)
    question = ASPECT_QUESTIONS[aspect].format(project=project_question(project))
    await answer_question(interaction, client.deps, client.limiter, question, own_words=own_words)


async def report_error(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """The one error handler: a log line with the traceback and a reference id, and the
    same reference id in a short apology to the user."""
    reference = uuid.uuid4().hex[:8]
    command = interaction.command.qualified_name if interaction.command else interaction.data
    log.error(
        "discord interaction failed [ref %s] (%s, user %s)",
        reference,
        command,
        interaction.user.id if interaction.user else None,
        exc_info=error,
    )
    try:
        loc = await loc_of(interaction)
    except Exception:  # the apology goes out whatever failed (the database?)
        log.warning("no saved language for the apology [ref %s]", reference, exc_info=True)
        loc = localizer(language_hint(interaction))
    apology = loc._(
        "Sorry, something went wrong on our side (reference `{reference}`). Please "
        "try again in a minute."
    ).format(reference=reference)
    try:
        if interaction.response.is_done():
            await _apology_slot(interaction)
            # Replaces the "thinking…"/progress message, so nothing is left stuck.
            await interaction.edit_original_response(
                content=apology, embeds=[], attachments=[], view=None
            )
        else:
            await interaction.response.send_message(apology, ephemeral=True)
    except discord.HTTPException:
        log.exception("could not send the apology for [ref %s]", reference)


async def _apology_slot(interaction: discord.Interaction[Any]) -> None:
    """The apology passes the limiter too, unless the limiter (Redis) is what failed: then
    the apology goes anyway, it is one message."""
    try:
        await _client(interaction).limiter.acquire(
            "discord", chat=destination_of(interaction), timeout_s=5.0
        )
    except Exception:
        log.warning("send limiter unavailable for an apology; sending it anyway", exc_info=True)


async def _autocomplete_project(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    return await project_choices(_client(interaction).deps, current)


def _project_command(name: str, description: str) -> app_commands.Command[Any, Any, None]:
    @app_commands.describe(project=PROJECT_OPTION)
    @app_commands.autocomplete(project=_autocomplete_project)
    async def callback(
        interaction: discord.Interaction[Any], project: app_commands.Range[str, 1, 100]
    ) -> None:
        await interaction.response.defer(thinking=True)
        await ask_aspect_deferred(interaction, name, project, own_words=project)

    return app_commands.Command(name=name, description=description, callback=callback)


class AlphaCommands(app_commands.Group):
    """/alpha subscribe|unsubscribe: the daily alpha report in this channel."""

    def __init__(self) -> None:
        super().__init__(
            name="alpha",
            description=N_("The daily alpha report in this channel"),
            default_permissions=discord.Permissions(manage_channels=True),
            allowed_contexts=app_commands.AppCommandContext(
                guild=True, dm_channel=True, private_channel=False
            ),
            allowed_installs=app_commands.AppInstallationType(guild=True, user=True),
        )

    @staticmethod
    def _reachable(interaction: discord.Interaction[Any]) -> bool:
        # The bot can post daily in a server that installed it, or in its own DM with the user.
        if interaction.guild_id is None:
            return interaction.context.dm_channel
        return interaction.is_guild_integration()

    @app_commands.command(name="subscribe", description=N_("Post the daily alpha report here"))
    @app_commands.describe(language=N_("The report's language here (default: your account's)"))
    @app_commands.choices(
        language=[
            app_commands.Choice(name=LANGUAGE_NAMES["en"], value="en"),
            app_commands.Choice(name=LANGUAGE_NAMES["vi"], value="vi"),
        ]
    )
    async def subscribe_(
        self,
        interaction: discord.Interaction[Any],
        language: app_commands.Choice[str] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True)
        loc = await loc_of(interaction)
        if not self._reachable(interaction):
            await reply_privately(
                interaction,
                loc._(
                    "I can only post the daily report in servers that added "
                    "ChainLens, or in our DM. Add me to this server first."
                ),
            )
            return
        deps = _client(interaction).deps
        account = await account_for_identity(deps, identity_of(interaction.user))
        _, changed = await subscribe(
            deps,
            account_id=account.id,
            channel="discord",
            destination=str(interaction.channel_id),
            language=language.value if language else None,
        )
        await reply_privately(
            interaction,
            loc._("Subscribed: the daily alpha report will be posted here.")
            if changed
            else loc._("This channel already receives the daily alpha report."),
        )

    @app_commands.command(name="unsubscribe", description=N_("Stop the daily alpha report here"))
    async def unsubscribe_(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True)
        deps = _client(interaction).deps
        loc = await loc_of(interaction)
        destination = str(interaction.channel_id)
        stopped = await unsubscribe(deps, channel="discord", destination=destination)
        if stopped:
            text = loc._("Unsubscribed: no more daily reports here.")
        elif await get_subscription(deps, channel="discord", destination=destination):
            text = loc._("This channel was already unsubscribed.")
        else:
            text = loc._("This channel is not subscribed. Use /alpha subscribe to start.")
        await reply_privately(interaction, text)


def build_tree(client: discord.Client) -> app_commands.CommandTree[Any]:
    """Register every slash command and the error handler on one command tree."""
    tree: app_commands.CommandTree[Any] = app_commands.CommandTree(
        client,
        allowed_contexts=app_commands.AppCommandContext(
            guild=True, dm_channel=True, private_channel=True
        ),
        allowed_installs=app_commands.AppInstallationType(guild=True, user=True),
    )

    @tree.command(name="ask", description=N_("Ask anything about a crypto project"))
    @app_commands.describe(question=N_("e.g. Research Uniswap, is the PEPE team legit?"))
    async def ask_command(
        interaction: discord.Interaction[Any],
        question: app_commands.Range[str, 1, MAX_QUESTION_CHARS],
    ) -> None:
        await ask(interaction, question)

    for name, description in (
        ("research", N_("Full research on a project: market, sentiment, tokenomics, team")),
        ("price", N_("Price, market cap and volume of a project")),
        ("sentiment", N_("What the crowd and the news say about a project")),
        ("tokenomics", N_("Supply, unlocks and contract risks of a project")),
        ("team", N_("Who builds a project and how active they are")),
    ):
        tree.add_command(_project_command(name, description))

    @tree.command(name="help", description=N_("What ChainLens can do"))
    async def help_command(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True)
        loc = await loc_of(interaction)
        await reply_privately(interaction, loc._(HELP_TEXT))

    @tree.command(name="usage", description=N_("Your plan and the requests left today"))
    async def usage_command(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True)
        deps = _client(interaction).deps
        account = await account_for_identity(deps, identity_of(interaction.user))
        loc = await loc_of(interaction)
        status = await quota_status(deps, account)
        text = loc._(
            "Plan: **{tier}**. {remaining} of {limit} requests left today (resets 00:00 UTC)."
        ).format(
            tier=account.tier, remaining=loc.count(status.remaining), limit=loc.count(status.limit)
        )
        if account.tier == "free":
            view = upgrade_view(checkout_link(deps.settings, account.id), loc)
            await reply_privately(interaction, text, view=view)
        else:
            await reply_privately(interaction, text)

    @tree.command(name="upgrade", description=N_("More requests with ChainLens Pro"))
    async def upgrade_command(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True)
        deps = _client(interaction).deps
        account = await account_for_identity(deps, identity_of(interaction.user))
        loc = await loc_of(interaction)
        if account.tier != "free":
            await reply_privately(
                interaction,
                loc._("You are on the **{tier}** plan already. Thank you!").format(
                    tier=account.tier
                ),
            )
            return
        pro = deps.settings.limits_for("pro")
        await reply_privately(
            interaction,
            loc._(
                "Pro: {daily} requests a day, {minute} a minute. The button "
                "opens a checkout for this Discord account (the link is valid "
                "for 15 minutes)."
            ).format(daily=loc.count(pro.daily), minute=loc.count(pro.minute)),
            view=upgrade_view(checkout_link(deps.settings, account.id), loc),
        )

    @tree.command(
        name="link", description=N_("Share one account across Telegram, Discord and the web")
    )
    @app_commands.describe(code=N_("A code from /link elsewhere (leave empty to get a code)"))
    async def link_command(
        interaction: discord.Interaction[Any], code: app_commands.Range[str, 1, 40] | None = None
    ) -> None:
        await interaction.response.defer(ephemeral=True)
        deps = _client(interaction).deps
        identity = identity_of(interaction.user)
        loc = await loc_of(interaction)
        if code:
            try:
                account = await redeem_link_code(deps, identity, code)
            except (LinkCodeInvalid, InvalidIdentity):
                await reply_privately(
                    interaction,
                    loc._(
                        "That code did not work: codes are single use and "
                        "expire after 10 minutes. Get a new one with /link."
                    ),
                )
                return
            loc = await loc_of(interaction)  # the account joined may have its own choice
            await reply_privately(
                interaction,
                loc._("Linked. You now share the {tier} account and its quota.").format(
                    tier=account.tier
                ),
            )
            return
        account = await account_for_identity(deps, identity)
        new_code = await create_link_code(deps, account)
        await reply_privately(
            interaction,
            loc._(
                "Your link code: `{code}` — send `/link {code}` to the Telegram "
                "bot or enter it on the web account page within 10 minutes."
            ).format(code=new_code),
        )

    @tree.command(name="lang", description=N_("Reply language: English, Tiếng Việt or automatic"))
    @app_commands.describe(language=N_("Leave empty to see the current choice"))
    @app_commands.choices(
        language=[
            app_commands.Choice(name=LANGUAGE_NAMES["en"], value="en"),
            app_commands.Choice(name=LANGUAGE_NAMES["vi"], value="vi"),
            app_commands.Choice(name=AUTO_LABEL, value="auto"),
        ]
    )
    async def lang_command(
        interaction: discord.Interaction[Any], language: app_commands.Choice[str] | None = None
    ) -> None:
        await interaction.response.defer(ephemeral=True)
        deps = _client(interaction).deps
        current = await language_of(interaction, deps)
        choice = parse_choice(language.value) if language is not None else None
        if choice is None:
            await reply_privately(interaction, current_choice_text(current, current.loc()))
            return
        account = await account_for_identity(deps, identity_of(interaction.user))
        await set_language(deps, account.id, None if choice == "auto" else choice)
        await reply_privately(interaction, choice_set_text(choice, await loc_of(interaction)))

    tree.add_command(AlphaCommands())
    # /watch /unwatch /watchlist /alerts /alert: imported here, the module uses this one's
    # reply helper.
    from bots.discord.watch import add_watch_commands

    add_watch_commands(tree)

    @tree.error
    async def on_error(
        interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", None)
        await report_error(interaction, original or error)

    return tree
