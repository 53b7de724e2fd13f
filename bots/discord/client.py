"""The Discord client: one command tree, the follow-up buttons, the shared send limiter."""

from __future__ import annotations

from typing import Any

import discord

from bots.discord.commands import build_tree, run_follow_up
from bots.discord.ratelimits import rate_limit_trace
from bots.discord.translator import CatalogueTranslator
from bots.discord.views import Aspect, FollowUpButton
from bots.discord.watch import SuggestionButton
from chainlens.deps import Deps
from chainlens.limiter import SendLimiter


class ChainLensDiscord(discord.AutoShardedClient):
    """Auto-sharded, so it scales past one shard without code changes."""

    def __init__(self, deps: Deps, **options: Any) -> None:
        if deps.settings.discord_api_base:
            # discord.py builds every REST and interaction URL from this one class attribute.
            discord.http.Route.BASE = deps.settings.discord_api_base.rstrip("/")
        limiter = SendLimiter.from_deps(deps)
        super().__init__(
            intents=discord.Intents.default(), http_trace=rate_limit_trace(limiter), **options
        )
        self.deps = deps
        self.limiter = limiter
        self.tree = build_tree(self)

    async def run_follow_up(
        self, interaction: discord.Interaction[Any], aspect: Aspect, project_id: str
    ) -> None:
        await run_follow_up(interaction, aspect, project_id)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(FollowUpButton, SuggestionButton)
        # Descriptions in each user's Discord language (sent with the commands on sync).
        await self.tree.set_translator(CatalogueTranslator())
        await self.tree.sync()


async def run_discord_bot(deps: Deps) -> None:
    """Connect to Discord until cancelled."""
    token = deps.settings.discord_bot_token
    assert token is not None, "DISCORD_BOT_TOKEN is not set"
    client = ChainLensDiscord(deps)
    async with client:
        await client.start(token.get_secret_value())
