"""Comparisons: 2-3 projects named with vs / versus / compare / "which is better" / "A or B"
(and Vietnamese), fanned out per project × tool, one side-by-side table with each figure's
source and age, a verdict per aspect, never a silent drop."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from agent import answer, answer_stream
from agent.cli import plan_one
from agent.events import FinalEvent, PlanEvent, ToolFinishedEvent, ToolStartedEvent
from bots.render import markdown_to_telegram
from chainlens.charts import normalised_series, render_price_overlay
from chainlens.deps import Deps
from tests.tools_fakes import FakeSources, fast_http

WithHttp = Callable[[Deps, httpx.AsyncBaseTransport], Deps]
KNOWN = {"solana", "ethereum", "arbitrum", "optimism", "aave", "avalanche-2", "chainlink"}


@pytest.fixture
def cdeps(deps: Deps, with_http: WithHttp, sources: FakeSources) -> Deps:
    sources.extra_coins |= KNOWN
    return fast_http(with_http(deps, sources.transport()))


@pytest.mark.parametrize(
    ("text", "ids", "tools"),
    [
        (
            "compare SOL and ETH",
            ["solana", "ethereum"],
            ["onchain", "sentiment", "team", "tokenomics"],
        ),
        ("ARB vs OP tokenomics?", ["arbitrum", "optimism"], ["tokenomics"]),
        ("uni vs aave: whose team is stronger?", ["uniswap", "aave"], ["team"]),
        (
            "which is better, SOL or AVAX",
            ["solana", "avalanche-2"],
            ["onchain", "sentiment", "team", "tokenomics"],
        ),
        ("SOL or ETH?", ["solana", "ethereum"], ["onchain", "sentiment", "team", "tokenomics"]),
        (
            "Chainlink versus Aave price and sentiment",
            ["chainlink", "aave"],
            ["onchain", "sentiment"],
        ),
        (
            "bitcoin vs ethereum vs solana",
            ["bitcoin", "ethereum", "solana"],
            ["onchain", "sentiment", "team", "tokenomics"],
        ),
        (
            "so sánh SOL và ETH",
            ["solana", "ethereum"],
            ["onchain", "sentiment", "team", "tokenomics"],
        ),
        ("so sanh tokenomics cua ARB va OP", ["arbitrum", "optimism"], ["tokenomics"]),
        ("SOL hay ETH, đội ngũ nào mạnh hơn?", ["solana", "ethereum"], ["team"]),
    ],
)
async def test_comparison_phrasings_plan_every_project(
    cdeps: Deps, text: str, ids: list[str], tools: list[str]
) -> None:
    plan = await plan_one(cdeps, text)
    assert plan["project_ids"] == ids and plan["project_id"] == ids[0]
    assert plan["tools"] == tools


@pytest.mark.parametrize(
    "text",
    [
        "Research Uniswap",
        "should I buy or sell SOL",
        "uniswap tokenomics and team",
        "Is the PEPE team legit?",
    ],
)
async def test_single_project_questions_are_not_comparisons(cdeps: Deps, text: str) -> None:
    assert "project_ids" not in await plan_one(cdeps, text)


async def test_comparison_fans_out_in_one_step_and_writes_the_table(cdeps: Deps) -> None:
    events = [e async for e in answer_stream(cdeps, "compare SOL and ETH")]
    plan = events[0]
    assert isinstance(plan, PlanEvent) and [p.id for p in plan.projects] == ["solana", "ethereum"]
    assert plan.plan.intent == "compare" and plan.plan.project_ids == ["solana", "ethereum"]
    started = [(e.project_id, e.tool) for e in events if isinstance(e, ToolStartedEvent)]
    finished = [e for e in events if isinstance(e, ToolFinishedEvent)]
    assert len(started) == 8 and len(finished) == 8
    kinds = [e.type for e in events]
    # one step: every (project, tool) starts before the first finishes
    assert max(i for i, k in enumerate(kinds) if k == "tool_started") < kinds.index("tool_finished")
    final = events[-1]
    assert isinstance(final, FinalEvent)
    text = final.answer
    assert text.startswith("## Solana (SOL) vs Ethereum (ETH)")
    assert "| Metric | Solana (SOL) | Ethereum (ETH) |" in text
    for row in (
        "| Price |",
        "| Market cap |",
        "| Market score |",
        "| Tokenomics score |",
        "| Team score |",
        "| Market & on-chain data |",
        "| Sentiment data |",
        "| Team & development data |",
    ):
        assert row in text, row
    assert "CoinGecko · " in text.split("| Market & on-chain data |")[1].split("\n")[0]
    # the fake's news is too thin to score sentiment: the verdict says so instead of guessing
    assert "Sentiment: not comparable — no score for Solana (SOL), Ethereum (ETH)" in text
    assert "Tokenomics: about even (SOL 95 / ETH 95)" in text
    assert "**Aspect by aspect**" in text and "Stance:" not in text  # no buy/sell call
    assert "Not financial advice" in text
    assert set(final.compared) == {"solana", "ethereum"}
    assert set(final.price_histories) == {"solana", "ethereum"}
    assert final.usage.cost_usd == 0 and final.substantive


async def test_one_projects_failing_source_is_named_in_the_table(
    cdeps: Deps, sources: FakeSources
) -> None:
    sources.extra_coins.discard("aave")  # CoinGecko says aave does not exist: its market data fails
    final = await answer(cdeps, "compare uniswap and aave price")
    row = final.answer.split("| Market & on-chain data |")[1].split("\n")[0]
    uni_cell, aave_cell = [c.strip() for c in row.strip(" |").split(" | ")]
    assert "CoinGecko" in uni_cell and "failed" not in uni_cell and "missing" not in uni_cell
    # both sources that gave Aave nothing are named: GoPlus errored, CoinGecko had no such coin
    assert aave_cell.endswith("failed: GoPlus, CoinGecko"), aave_cell
    assert "| Price | $10.00 | — |" in final.answer
    assert final.substantive  # Uniswap's figures were delivered


async def test_more_than_three_projects_gets_a_clear_answer(cdeps: Deps) -> None:
    final = await answer(cdeps, "compare uniswap, aave, solana and ethereum")
    assert final.project is None and not final.substantive
    assert "up to 3 projects" in final.answer and "names 4" in final.answer
    assert "Aave (AAVE)" in final.answer and "Ethereum (ETH)" in final.answer
    plan = await plan_one(cdeps, "compare uniswap, aave, solana and ethereum")
    assert plan["too_many"] is True and plan["tools"] == []


async def test_an_unresolved_name_is_reported_not_dropped(cdeps: Deps) -> None:
    final = await answer(cdeps, "compare SOL vs Zzqxcoin")
    assert final.project is None and not final.substantive
    assert "Zzqxcoin" in final.answer and "Solana (SOL)" in final.answer
    assert "Nothing was compared yet" in final.answer


async def test_vietnamese_comparison(cdeps: Deps) -> None:
    final = await answer(cdeps, "so sánh SOL và ETH")
    assert final.language == "vi"
    assert "| Chỉ số | Solana (SOL) | Ethereum (ETH) |" in final.answer
    assert "**Từng khía cạnh**" in final.answer


async def test_follow_up_after_a_comparison_uses_the_first_project(cdeps: Deps) -> None:
    conversation = uuid.uuid4().hex
    await answer(cdeps, "SOL vs ETH?", conversation_id=conversation)
    follow = await answer(cdeps, "and its team?", conversation_id=conversation)
    assert follow.project is not None and follow.project.id == "solana"
    assert follow.plan.intent != "compare"


async def test_the_table_renders_as_monospace_in_telegram(cdeps: Deps) -> None:
    final = await answer(cdeps, "ARB vs OP tokenomics?")
    part = markdown_to_telegram(final.answer)
    assert "<pre>" in part.html
    table = part.html.split("<pre>")[1].split("</pre>")[0]
    lines = table.splitlines()
    assert lines[0].startswith("Metric") and "Arbitrum (ARB)" in lines[0]
    # aligned columns: the second column starts at the same place on every row
    col = lines[0].index("Arbitrum (ARB)")
    assert set(lines[1]) <= {"-", " "}
    for line in lines[2:]:
        assert line[col - 2 : col] == "  " and line[col] != " ", line


def test_overlay_normalises_prices_to_a_common_start() -> None:
    day = 86_400_000
    series = {
        "SOL": [(0, 100.0), (day, 110.0), (2 * day, 120.0)],
        "ETH": [(day, 2000.0), (2 * day, 1000.0)],
    }
    rebased = normalised_series(series)
    assert rebased["SOL"] == [(day, 100.0), (2 * day, 120.0 / 110.0 * 100)]
    assert rebased["ETH"] == [(day, 100.0), (2 * day, 50.0)]
    png = render_price_overlay("SOL vs ETH, normalised", series)
    assert png.startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="at least two price series"):
        render_price_overlay("one", {"SOL": series["SOL"]})


async def test_the_table_is_a_code_block_in_discord(cdeps: Deps) -> None:
    from bots.discord.layout import to_discord_markdown

    final = await answer(cdeps, "uni vs aave: whose team is stronger?")
    text = to_discord_markdown(final.answer)
    block = text.split("```")[1]
    assert block.strip().splitlines()[0].startswith("Metric") and "| Metric |" not in text
    assert "**Uniswap (UNI) vs Aave (AAVE)**" in text
