"""The rule planner over the ways people actually ask, and the LLM planner's fallback to it."""

from __future__ import annotations

import pytest

from agent.planner import plan_tools
from agent.rules import Plan, plan_by_rules, refers_back
from chainlens.deps import Deps
from test_agent_support import (  # noqa: F401  (fixtures)
    Fail,
    FakeLLM,
    Reply,
    llm_server,
    llm_server_session,
    with_llm,
)
from tools.results import Project

ALL = {"onchain", "sentiment", "tokenomics", "team"}
BARE = {"onchain", "sentiment"}
NONE: set[str] = set()

# (question, tools) for questions that name a project.
WITH_PROJECT: list[tuple[str, set[str]]] = [
    # research intent -> all four
    ("Analyze Curve", ALL),
    ("analyse Curve Finance", ALL),
    ("Research Uniswap", ALL),
    ("research aave please", ALL),
    ("Can you do some research on Arbitrum?", ALL),
    ("Give me an analysis of LINK", ALL),
    ("deep dive on Celestia", ALL),
    ("Deep-dive into $TIA", ALL),
    ("DYOR on PEPE", ALL),
    ("overview of Optimism", ALL),
    ("full report on Solana", ALL),
    ("Tell me about Chainlink", ALL),
    ("tell me about $ENA", ALL),
    ("Should I buy ETH?", ALL),
    ("should i buy some doge", ALL),
    ("Is Aave a good investment?", ALL),
    ("is SOL a good investment right now", ALL),
    ("Is PEPE worth buying?", ALL),
    ("Should I invest in Render?", ALL),
    ("thoughts on Injective?", ALL),
    ("What do you think about Sui?", ALL),
    ("due diligence on Jupiter", ALL),
    ("Should I buy UNI given its tokenomics?", ALL),
    ("review Lido", ALL),
    ("Give me a breakdown of Maker", ALL),
    ("What is Ethena?", ALL),
    # market / on-chain
    ("what's SOL trading at?", {"onchain"}),
    ("ETH price", {"onchain"}),
    ("price of bitcoin?", {"onchain"}),
    ("What's the market cap of Uniswap?", {"onchain"}),
    ("UNI mcap", {"onchain"}),
    ("24h volume on $ARB", {"onchain"}),
    ("What's Aave's TVL?", {"onchain"}),
    ("how much liquidity does PEPE have", {"onchain"}),
    ("show me the LINK chart", {"onchain"}),
    ("how many holders does SHIB have?", {"onchain"}),
    ("what's the 24h change for DOGE", {"onchain"}),
    ("how much is one ETH?", {"onchain"}),
    ("Is SOL near its all-time high?", {"onchain"}),
    ("why is ARB dumping?", {"onchain"}),
    ("is BONK pumping today", {"onchain"}),
    ("Where does Avalanche rank by market cap?", {"onchain"}),
    # sentiment
    ("what's the crowd saying about $ARB", {"sentiment"}),
    ("sentiment on Solana", {"sentiment"}),
    ("What's the mood around PEPE?", {"sentiment"}),
    ("is there any buzz around Celestia", {"sentiment"}),
    ("is the ETH hype real", {"sentiment"}),
    ("lots of FUD about Tether lately", {"sentiment"}),
    ("are people bullish on LINK?", {"sentiment"}),
    ("Is everyone bearish on ADA", {"sentiment"}),
    ("what are people saying about Sui?", {"sentiment"}),
    ("What does twitter think of WIF?", {"sentiment"}),
    ("reddit opinion on Cardano", {"sentiment"}),
    ("Any news on Ripple?", {"sentiment"}),
    ("latest headlines about Chainlink", {"sentiment"}),
    ("what's the vibe on BONK", {"sentiment"}),
    # tokenomics
    ("when is the next OP unlock?", {"tokenomics"}),
    ("ETH tokenomics?", {"tokenomics"}),
    ("What's the circulating supply of ARB?", {"tokenomics"}),
    ("max supply of Bitcoin", {"tokenomics"}),
    ("Is DOGE inflationary?", {"tokenomics"}),
    ("what's the inflation rate of SOL", {"tokenomics"}),
    ("APT vesting schedule", {"tokenomics"}),
    ("how are STRK emissions looking", {"tokenomics"}),
    ("does BNB burn tokens?", {"tokenomics"}),
    ("what's the FDV of Celestia", {"tokenomics"}),
    ("token distribution of WLD", {"tokenomics"}),
    ("upcoming unlocks for SUI", {"tokenomics"}),
    ("is PEPE mintable?", {"tokenomics"}),
    ("is $SHIB a honeypot", {"tokenomics"}),
    # team
    ("is the Polygon team still shipping?", {"team"}),
    ("Who are the founders of Solana?", {"team"}),
    ("Are the Cardano devs active?", {"team"}),
    ("Uniswap github activity", {"team"}),
    ("How is development activity on Polkadot?", {"team"}),
    ("Any partnerships for Chainlink?", {"team"}),
    ("Has Aave been audited?", {"team"}),
    ("Who are the backers of Berachain?", {"team"}),
    ("is the PEPE team legit?", {"team"}),
    ("Is Ethena credible?", {"team"}),
    ("is the WIF team doxxed", {"team"}),
    ("Is Curve legit?", {"team"}),
    ("who is behind Hyperliquid?", {"team"}),
    # several aspects -> union
    ("ARB price and sentiment", {"onchain", "sentiment"}),
    ("OP unlocks and what people are saying", {"tokenomics", "sentiment"}),
    ("Aave TVL and audits", {"onchain", "team"}),
    ("LINK supply, holders and team", {"tokenomics", "onchain", "team"}),
    ("Analyze Curve's tokenomics", {"tokenomics"}),
    ("Tell me about the Uniswap team and its github", {"team"}),
    ("is PEPE a scam?", {"team", "tokenomics"}),
    ("could this token rug? $XYZ", {"team", "tokenomics"}),
    # bare mentions -> onchain + sentiment
    ("$SOL?", BARE),
    ("how is Aave doing?", BARE),
    ("ETH", BARE),
    ("what about Uniswap", BARE),
    ("how's PEPE looking today", BARE),
    ("Solana!", BARE),
    ("what's ETH doing today?", BARE),
]

# Messages that name no project.
WITHOUT_PROJECT: list[str] = [
    "good morning",
    "hi",
    "hello there!",
    "help",
    "what can you do?",
    "how do I upgrade to pro?",
    "cancel my subscription",
    "thanks!",
    "what's the weather in Paris?",
    "tell me a joke",
    "research",
    "how much does the pro plan cost?",
]


@pytest.mark.parametrize(("question", "expected"), WITH_PROJECT)
def test_rules_choose_tools(question: str, expected: set[str]) -> None:
    assert set(plan_by_rules(question, has_project=True).tools) == expected


@pytest.mark.parametrize("question", WITHOUT_PROJECT)
def test_no_project_means_no_tools(question: str) -> None:
    plan = plan_by_rules(question, has_project=False)
    assert plan.tools == () and plan.intent == "none"


def test_plan_tools_are_in_canonical_order_and_deduplicated() -> None:
    plan = Plan.of(["team", "onchain", "team"], intent="aspects")
    assert plan.tools == ("onchain", "team")


@pytest.mark.parametrize(
    ("question", "follows"),
    [
        ("what about its team?", True),
        ("and the tokenomics?", True),
        ("how is it doing?", True),
        ("price?", True),
        ("should I buy?", True),
        ("good morning", False),
        ("thanks", False),
    ],
)
def test_follow_up_detection(question: str, follows: bool) -> None:
    assert refers_back(question) is follows


UNI = Project(id="uniswap", symbol="UNI", name="Uniswap")


async def test_llm_planner_uses_tool_calls(deps: Deps, llm_server: FakeLLM) -> None:
    llm_server.script(
        "planner", Reply(tool_calls=["team", "tokenomics"], tokens_in=40, tokens_out=6)
    )
    plan, usage = await plan_tools(with_llm(deps, llm_server, "planner"), "is it legit?", UNI)
    assert plan.router == "llm" and set(plan.tools) == {"team", "tokenomics"}
    assert (usage.tokens_in, usage.tokens_out) == (40, 6)
    sent = llm_server.requests[0]
    assert {t["function"]["name"] for t in sent["tools"]} == ALL
    assert "research intent" in sent["messages"][0]["content"]  # the rules are in the prompt


async def test_llm_planner_falls_back_to_rules(deps: Deps, llm_server: FakeLLM) -> None:
    llm_server.script("broken", Fail(500), Fail(500))
    plan, usage = await plan_tools(with_llm(deps, llm_server, "broken"), "Analyze Curve", UNI)
    assert plan.router == "rules" and set(plan.tools) == ALL and usage.cost_usd == 0
    llm_server.script("silent", Reply(text="no idea"))
    plan, _ = await plan_tools(with_llm(deps, llm_server, "silent"), "UNI price", UNI)
    assert plan.router == "rules" and plan.tools == ("onchain",)


async def test_no_project_skips_the_model(deps: Deps, llm_server: FakeLLM) -> None:
    plan, _ = await plan_tools(with_llm(deps, llm_server, "planner"), "good morning", None)
    assert plan.tools == () and llm_server.requests == []
