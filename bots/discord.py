"""Discord adapter (discord.py): slash commands that call the chat service and render embeds.

All command registration lives in `setup()`. The bot uses the auto-sharded client so it
scales past one shard without code changes.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time

import discord
from discord import app_commands

from billing.accounts import LinkCodeInvalid, account_for_identity, create_link_code, redeem_link_code
from billing.quota import quota_status
from bots.render import HELP_TEXT, Progress, split_message
from chainlens.chat import ChatTurn, MessageTooLong, chat
from chainlens.deps import Deps

log = logging.getLogger(__name__)
EMBED_LIMIT = 4096
_EDIT_INTERVAL_S = 1.2
_COLOUR = discord.Colour.from_rgb(59, 91, 219)


def answer_embeds(answer: str, title: str | None) -> list[discord.Embed]:
    """The answer as one or more embeds within Discord's description limit."""
    parts = split_message(answer, EMBED_LIMIT - 100)
    embeds = []
    for index, part in enumerate(parts[:10]):  # Discord allows 10 embeds per message
        embed = discord.Embed(description=part, colour=_COLOUR)
        if index == 0 and title:
            embed.title = title
        embeds.append(embed)
    embeds[-1].set_footer(text="ChainLens · not financial advice")
    return embeds


async def ask_command(interaction: discord.Interaction, question: str, deps: Deps) -> None:
    """/ask: answer a question, editing the deferred reply as the answer is built."""
    await interaction.response.defer(thinking=True)
    turn = ChatTurn(identity=f"discord:{interaction.user.id}", channel="discord", text=question,
                    conversation_id=f"discord:{interaction.channel_id}:{interaction.user.id}")
    progress = Progress()
    last_edit = 0.0

    async def show(force: bool = False) -> None:
        nonlocal last_edit
        now = time.monotonic()
        if force or now - last_edit >= _EDIT_INTERVAL_S:
            last_edit = now
            await interaction.edit_original_response(content=progress.render()[-1900:])

    try:
        async for event in chat(deps, turn):
            if event.type == "refused":
                await interaction.edit_original_response(content=event.message)
                return
            plan_arrived = progress.apply(event)
            if progress.final is None:
                await show(force=plan_arrived)
    except MessageTooLong as exc:
        await interaction.edit_original_response(content=str(exc))
        return

    final = progress.final
    project = getattr(final, "project", None)
    embeds = answer_embeds(progress.answer, project.display if project else None)
    attachments: list[discord.File] = []
    history = getattr(final, "price_history", None)
    if history and project and len(history) >= 2:
        from chainlens.charts import render_price_chart

        png = await asyncio.to_thread(render_price_chart, project.display, history)
        attachments.append(discord.File(io.BytesIO(png), filename="chart.png"))
        embeds[0].set_image(url="attachment://chart.png")
    await interaction.edit_original_response(content=None, embeds=embeds, attachments=attachments)


def setup(client: discord.AutoShardedClient, deps: Deps) -> app_commands.CommandTree:
    """Register every slash command and the error handler on one command tree."""
    tree = app_commands.CommandTree(client)

    @tree.command(name="ask", description="Research a crypto project")
    @app_commands.describe(question="e.g. Research Uniswap, is the PEPE team legit?")
    async def ask(interaction: discord.Interaction, question: str) -> None:
        await ask_command(interaction, question, deps)

    @tree.command(name="help", description="What ChainLens can do")
    async def help_(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(HELP_TEXT, ephemeral=True)

    @tree.command(name="usage", description="Requests left today")
    async def usage(interaction: discord.Interaction) -> None:
        account = await account_for_identity(deps, f"discord:{interaction.user.id}")
        status = await quota_status(deps, account)
        await interaction.response.send_message(
            f"Plan: {account.tier}. {status.remaining} of {status.limit} requests left today.",
            ephemeral=True)

    @tree.command(name="link", description="Share one account across Telegram, Discord and the web")
    @app_commands.describe(code="A code from /link in another channel (leave empty to get one)")
    async def link(interaction: discord.Interaction, code: str | None = None) -> None:
        identity = f"discord:{interaction.user.id}"
        if code:
            try:
                account = await redeem_link_code(deps, identity, code)
            except LinkCodeInvalid:
                await interaction.response.send_message(
                    "That code is not valid (single use, 10 minutes). Get a new one with /link.",
                    ephemeral=True)
                return
            await interaction.response.send_message(
                f"Linked. You now share the {account.tier} account and its quota.", ephemeral=True)
            return
        account = await account_for_identity(deps, identity)
        new_code = await create_link_code(deps, account)
        await interaction.response.send_message(
            f"Your link code: `{new_code}` — send `/link {new_code}` to the Telegram bot or enter "
            "it on the web account page within 10 minutes.", ephemeral=True)

    @tree.error
    async def on_error(interaction: discord.Interaction,
                       error: app_commands.AppCommandError) -> None:
        log.error("discord command failed", exc_info=error)
        message = "Something went wrong on our side. Please try again in a minute."
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)

    return tree


class ChainLensDiscord(discord.AutoShardedClient):
    def __init__(self, deps: Deps) -> None:
        super().__init__(intents=discord.Intents.default())
        self.tree = setup(self, deps)

    async def setup_hook(self) -> None:
        await self.tree.sync()


async def run_discord_bot(deps: Deps) -> None:
    """Connect to Discord until cancelled."""
    token = deps.settings.discord_bot_token
    assert token is not None, "DISCORD_BOT_TOKEN is not set"
    client = ChainLensDiscord(deps)
    async with client:
        await client.start(token.get_secret_value())
