"""The answer's Discord layout on its own: whatever the answer, every message passes the
same validation the fake Discord applies (tests/fake_discord_api.py)."""

from __future__ import annotations

import discord

from agent import PlanEvent, TextEvent
from agent.events import PlanInfo
from bots.discord.layout import (
    CONTENT_LIMIT,
    answer_messages,
    plain_text_parts,
    progress_content,
    split_text,
    to_discord_markdown,
)
from bots.render import Progress
from tests.fake_discord_api import embed_size, validate_message
from tests.tools_fakes import UNISWAP


def _valid(messages: list[list[discord.Embed]]) -> None:
    for embeds in messages:
        validate_message({"embeds": [e.to_dict() for e in embeds]}, has_files=False)


def test_everything_oversized_still_fits_discord() -> None:
    answer = "\n\n".join(f"## Part {i}\n" + "word " * 700 for i in range(12))
    fields = [(f"Tool {i} " + "n" * 300, "v" * 3000) for i in range(30)]
    messages = answer_messages(
        answer,
        title="T" * 400,
        colour=discord.Colour.green(),
        fields=fields,
        footer="Sources: " + "s" * 3000,
        chart=True,
    )
    _valid([m.embeds for m in messages])
    assert len(messages) > 2
    embeds = [e for m in messages for e in m.embeds]
    assert embeds[0].title is not None and len(embeds[0].title) == 256
    assert sum(len(e.fields) for e in embeds) == 25
    assert [m.chart for m in messages].count(True) == 1 and messages[-1].chart
    assert embeds[-1].image.url == "attachment://chart.png"
    for i in range(12):
        assert f"**Part {i}**" in "".join(e.description or "" for e in embeds)


def test_a_short_answer_is_one_message_with_fields_and_footer() -> None:
    [message] = answer_messages(
        "## Summary\nAll good.",
        title="Uniswap (UNI)",
        colour=discord.Colour.green(),
        fields=[("Sentiment", "• calm")],
        footer="Sources: CoinGecko",
    )
    [embed] = message.embeds
    assert embed.description == "**Summary**\nAll good."
    assert [f.name for f in embed.fields] == ["Sentiment"]
    assert embed.footer.text == "Sources: CoinGecko"
    assert embed_size(embed.to_dict()) == len(embed)


def test_code_blocks_split_across_parts_stay_closed() -> None:
    code = "```\n" + "\n".join(f"line {i} # not a heading" for i in range(600)) + "\n```"
    parts = split_text(to_discord_markdown("Intro\n\n" + code), 4096)
    assert len(parts) > 1
    assert all(p.count("```") % 2 == 0 and len(p) <= 4096 for p in parts)
    assert "# not a heading" in parts[-1]  # headings inside code are left alone


def test_plain_text_parts_fit_message_content() -> None:
    parts = plain_text_parts("para\n\n" * 2000)
    assert all(len(p) <= CONTENT_LIMIT for p in parts)


def test_progress_keeps_the_project_and_the_newest_text_within_2000() -> None:
    progress = Progress()
    progress.apply(
        PlanEvent(
            project=UNISWAP,
            plan=PlanInfo(tools=["onchain", "team"], router="rules", intent="research"),
        )
    )
    for i in range(400):
        progress.apply(TextEvent(text=f"sentence {i}. "))
    content = progress_content(progress)
    assert len(content) <= CONTENT_LIMIT
    assert content.startswith("🎯 Uniswap (UNI)") and content.endswith("sentence 399. ")
