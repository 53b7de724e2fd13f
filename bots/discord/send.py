"""Every message the Discord bot sends passes the shared send limiter (chainlens/limiter.py).

Two entry points: `InteractionReply` (the messages of one interaction: progress edits, the
answer, its follow-ups) and `send_to_channel` (reports and alerts to a channel id).

A 429 from Discord is waited out by discord.py itself (its HTTP client and webhook adapter
sleep `retry_after` and retry the same request); nothing here retries a send, so a 429 can
never turn into a second copy of a message. The first response to an interaction (defer,
autocomplete choices) is exempt from the limiter: Discord wants it within 3 s, before any
network work, and it is not a channel message.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, Protocol

import discord

from chainlens.limiter import SendLimiter

if TYPE_CHECKING:
    from chainlens.deps import Deps

log = logging.getLogger(__name__)


class ChannelSender(Protocol):
    def __call__(
        self,
        channel_id: int,
        *,
        content: str | None = None,
        embeds: list[discord.Embed] | None = None,
        view: discord.ui.View | None = None,
    ) -> Awaitable[discord.Message]: ...


def destination_of(interaction: discord.Interaction[Any]) -> str:
    """The limiter's destination for an interaction: its channel (a DM's channel too)."""
    return str(interaction.channel_id or interaction.user.id)


class InteractionReply:
    """The outgoing side of one interaction, through the limiter."""

    def __init__(self, interaction: discord.Interaction[Any], limiter: SendLimiter) -> None:
        self.interaction = interaction
        self.limiter = limiter
        self.destination = destination_of(interaction)

    async def _slot(self) -> None:
        await self.limiter.acquire("discord", chat=self.destination)

    async def try_edit(self, **fields: Any) -> bool:
        """Edit the original response only if a send slot is free now (progress: skip
        rather than wait, so progress never delays the answer)."""
        if await self.limiter.try_acquire("discord", chat=self.destination) > 0:
            return False
        try:
            await self.interaction.edit_original_response(**fields)
        except discord.HTTPException as exc:
            # A lost progress line is not worth the answer: the final delivery has its own
            # fallback. (429s never get here; discord.py waits them out.)
            log.warning("discord progress edit refused: %s %s", exc.status, exc.text[:200])
            return False
        return True

    async def edit(self, **fields: Any) -> None:
        await self._slot()
        await self.interaction.edit_original_response(**fields)

    async def followup(self, **fields: Any) -> discord.WebhookMessage:
        await self._slot()
        return await self.interaction.followup.send(wait=True, **fields)

    async def delete_original(self) -> None:
        await self._slot()
        await self.interaction.delete_original_response()


@contextlib.asynccontextmanager
async def open_channel_sender(deps: Deps) -> AsyncIterator[ChannelSender]:
    """For processes without a gateway connection (report and alert workers): a REST-only
    Discord client, logged in and closed here, and a send function bound to it."""
    from bots.discord.ratelimits import rate_limit_trace

    token = deps.settings.discord_bot_token
    if token is None:
        raise RuntimeError("DISCORD_BOT_TOKEN is not set")
    if deps.settings.discord_api_base:
        discord.http.Route.BASE = deps.settings.discord_api_base.rstrip("/")
    limiter = SendLimiter.from_deps(deps)
    client = discord.Client(intents=discord.Intents.none(), http_trace=rate_limit_trace(limiter))
    await client.login(token.get_secret_value())
    try:

        async def send(
            channel_id: int,
            *,
            content: str | None = None,
            embeds: list[discord.Embed] | None = None,
            view: discord.ui.View | None = None,
        ) -> discord.Message:
            return await send_to_channel(
                client, limiter, channel_id, content=content, embeds=embeds, view=view
            )

        yield send
    finally:
        await client.close()


async def send_to_channel(
    client: discord.Client,
    limiter: SendLimiter,
    channel_id: int,
    *,
    content: str | None = None,
    embeds: list[discord.Embed] | None = None,
    view: discord.ui.View | None = None,
) -> discord.Message:
    """Send one rendered message to a channel (daily reports, alerts)."""
    await limiter.acquire("discord", chat=str(channel_id))
    channel = client.get_partial_messageable(channel_id)
    kwargs: dict[str, Any] = {"content": content, "embeds": embeds or []}
    if view is not None:
        kwargs["view"] = view
    return await channel.send(**kwargs)
