"""Comparisons in the chats, against the strict fakes: Telegram gets the table as aligned
monospace text (valid HTML, under 4,096) and the projects' prices overlaid as one photo;
Discord gets the table as inline embed fields side by side (within every embed limit) and
the overlay attached. One request either way."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from billing.accounts import account_for_identity
from billing.quota import quota_status
from bots.discord.layout import FIELD_VALUE_LIMIT, SPACER, table_fields
from chainlens.deps import Deps
from tests import telegram_updates as tu
from tests.fake_bot_api import parse_telegram_html, utf16_len
from tests.fake_discord_api import USER_ID, embed_size
from tests.test_bots_discord import Bot, start_bot
from tests.test_bots_telegram import (
    PRIVATE,
    USER,
    Harness,
    tg,  # noqa: F401  (fixture)
)
from tests.tools_fakes import FakeSources

COMPARED = {"solana", "ethereum", "aave"}


@pytest.fixture
async def discord_bot(fast_deps: Deps, sources: FakeSources) -> AsyncIterator[Bot]:
    sources.extra_coins |= COMPARED
    async for running in start_bot(fast_deps):
        yield running


async def test_telegram_comparison_is_a_monospace_table_and_one_overlay_photo(
    tg: Harness, sources: FakeSources
) -> None:
    sources.extra_coins |= COMPARED
    before = await tg.remaining()
    await tg.send(tu.message("compare uniswap, solana and ethereum"))
    answers = tg.fake.sent("sendMessage", PRIVATE)
    assert answers and all(a["parse_mode"] == "HTML" for a in answers)
    text = "".join(a["text"] for a in answers)
    for answer in answers:  # the strict fake accepted each; check the limits explicitly too
        parse_telegram_html(answer["text"])
        assert utf16_len(parse_telegram_html(answer["text"])[0]) <= 4096
    table = text.split("<pre>")[1].split("</pre>")[0]
    header = table.splitlines()[0]
    assert header.startswith("Metric") and "Uniswap (UNI)" in header and "Ethereum (ETH)" in header
    assert "| Metric |" not in text and "<b>Aspect by aspect</b>" in text
    [photo] = tg.fake.sent("sendPhoto", PRIVATE)
    assert photo["_photo_png"]
    assert photo["caption"] == (
        "Uniswap (UNI) vs Solana (SOL) vs Ethereum (ETH): prices "
        "normalised to 100 at a common start"
    )
    assert await tg.remaining() == before - 1  # 12 tool runs, one request


async def test_telegram_vietnamese_comparison_caption(tg: Harness, sources: FakeSources) -> None:
    sources.extra_coins |= COMPARED
    await tg.send(tu.message("so sánh giá SOL và ETH", user_id=USER + 1))
    [photo] = tg.fake.sent("sendPhoto", PRIVATE)
    assert photo["caption"].startswith("Solana (SOL) vs Ethereum (ETH): giá quy về mốc 100")


async def test_discord_comparison_is_inline_fields_with_the_overlay(discord_bot: Bot) -> None:
    bot = discord_bot
    payload = bot.fake.slash(
        "ask", [{"name": "question", "type": 3, "value": "compare uniswap, solana and ethereum"}]
    )
    await bot.dispatch(payload)
    messages = bot.fake.messages_of(payload)
    embeds = [e for m in messages for e in m["embeds"]]
    assert embeds[0]["title"] == "Uniswap (UNI) vs Solana (SOL) vs Ethereum (ETH)"
    description = "\n".join(e.get("description", "") for e in embeds)
    assert "Aspect by aspect" in description and "Metric" not in description  # no table text
    fields = [f for e in embeds for f in e.get("fields", [])]
    assert [f["name"] for f in fields[:3]] == ["Uniswap (UNI)", "Solana (SOL)", "Ethereum (ETH)"]
    assert all(f["inline"] for f in fields)
    for f in fields[:3]:
        assert "**Price**: $" in f["value"]
        assert "**Market & on-chain data**: CoinGecko" in f["value"]
    for message in messages:  # within Discord's limits (the fake would have refused, too)
        assert sum(embed_size(e) for e in message["embeds"]) <= 6000
        for e in message["embeds"]:
            assert len(e.get("fields", [])) <= 25
            assert all(len(f["value"]) <= 1024 for f in e.get("fields", []))
    charted = [m for m in messages if m.get("attachments")]
    assert [a["filename"] for a in charted[0]["attachments"]] == ["chart.png"]
    account = await account_for_identity(bot.deps, f"discord:{USER_ID}")
    status = await quota_status(bot.deps, account)
    assert status.remaining == status.limit - 1  # one request for the whole comparison


async def test_discord_two_projects_keep_their_columns(discord_bot: Bot) -> None:
    bot = discord_bot
    payload = bot.fake.slash(
        "ask", [{"name": "question", "type": 3, "value": "uniswap vs aave tokenomics"}]
    )
    await bot.dispatch(payload)
    fields = [
        f for m in bot.fake.messages_of(payload) for e in m["embeds"] for f in e.get("fields", [])
    ]
    # two columns and a spacer per row of the grid, so Discord keeps the columns aligned
    assert [f["name"] for f in fields[:3]] == ["Uniswap (UNI)", "Aave (AAVE)", SPACER]
    assert "**Tokenomics score**" in fields[0]["value"]


def test_table_fields_cut_long_columns_at_the_same_row() -> None:
    rows = "\n".join(f"| Row {i} | {'a' * 80} | {'b' * 10} |" for i in range(30))
    markdown = f"## A vs B\n\n| Metric | A | B |\n|---|---|---|\n{rows}\n\nAfter the table.\n"
    rest, fields = table_fields(markdown)
    assert rest == "## A vs B\n\nAfter the table.\n"
    assert all(len(value) <= FIELD_VALUE_LIMIT for _, value in fields)
    names = [name for name, _ in fields]
    assert names[:3] == ["A", "B", SPACER] and len(fields) % 3 == 0 and len(fields) > 3
    # each row of fields covers the same table rows in both columns
    for start in range(0, len(fields), 3):
        a_rows = [line.split("**")[1] for line in fields[start][1].splitlines()]
        b_rows = [line.split("**")[1] for line in fields[start + 1][1].splitlines()]
        assert a_rows == b_rows
    assert table_fields("no table here\n") == ("no table here\n", [])


def test_progress_names_the_projects_and_joins_each_tools_runs() -> None:
    from agent.events import PlanEvent, PlanInfo, ToolFinishedEvent, ToolStartedEvent
    from bots.render import Progress
    from tools.results import Project

    progress = Progress()
    projects = [
        Project(id="solana", symbol="sol", name="Solana"),
        Project(id="ethereum", symbol="eth", name="Ethereum"),
    ]
    progress.apply(
        PlanEvent(
            project=projects[0],
            projects=projects,
            plan=PlanInfo(tools=["onchain"], router="rules", intent="compare"),
        )
    )
    assert progress.project == "Solana (SOL) vs Ethereum (ETH)"
    for p in ("solana", "ethereum"):
        progress.apply(ToolStartedEvent(tool="onchain", project_id=p))
    progress.apply(
        ToolFinishedEvent(tool="onchain", project_id="solana", ok=True, cache="hot", elapsed_ms=1.0)
    )
    assert progress.tools == {"onchain": "running"}  # Ethereum's run is still going
    progress.apply(
        ToolFinishedEvent(
            tool="onchain", project_id="ethereum", ok=False, cache="none", elapsed_ms=1.0
        )
    )
    assert progress.tools == {"onchain": "partial"}  # one project's data failed
    assert "🟡 Market & on-chain (partial)" in progress.status_line()
