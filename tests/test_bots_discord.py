"""The Discord adapter: its command tree and how answers become embeds (discord.py objects)."""

from __future__ import annotations

import discord

from bots.discord import EMBED_LIMIT, ChainLensDiscord, answer_embeds
from chainlens.deps import Deps


async def test_slash_commands_are_registered(deps: Deps) -> None:
    client = ChainLensDiscord(deps)
    try:
        commands = {command.name: command for command in client.tree.get_commands()}
        assert set(commands) == {"ask", "help", "usage", "link"}
        ask = commands["ask"]
        assert isinstance(ask, discord.app_commands.Command)
        assert [p.name for p in ask.parameters] == ["question"]
        assert [p.required for p in commands["link"].parameters] == [False]
    finally:
        await client.http.close()  # never logged in: only the HTTP client exists


def test_long_answers_are_split_into_embeds_within_limits() -> None:
    answer = "\n".join(f"- insight number {i} with some words" for i in range(400))
    embeds = answer_embeds(answer, "Uniswap (UNI)")
    assert len(embeds) > 1
    assert embeds[0].title == "Uniswap (UNI)"
    assert all(len(e.description or "") <= EMBED_LIMIT for e in embeds)
    assert "".join(e.description or "" for e in embeds).replace("\n", "") == answer.replace("\n", "")
    assert embeds[-1].footer.text == "ChainLens · not financial advice"
