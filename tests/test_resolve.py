"""Project resolution: many phrasings, everyday words, typos, collisions and the live fallbacks."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from chainlens.deps import Deps
from tests.conftest import SHARED_FIXTURES
from tools.index import CoinIndex, IndexEntry, bundled_index
from tools.resolve import (
    find_project_mention,
    pick_search_result,
    project_from_coin,
    resolve_offline,
    resolve_project,
    search_query,
)

WithHttp = Callable[[Deps, httpx.AsyncBaseTransport], Deps]
INDEX = bundled_index()


# --- one exact coin from many phrasings ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "coin_id", "matched"),
    [
        # the phrasings
        ("Research Uniswap", "uniswap", "Uniswap"),
        ("is the PEPE team legit?", "pepe", "PEPE"),
        ("ETH tokenomics?", "ethereum", "ETH"),
        ("what's SOL trading at?", "solana", "SOL"),
        ("what's the crowd saying about $ARB", "arbitrum", "$ARB"),
        ("when is the next OP unlock?", "optimism", "OP"),
        ("is the Polygon team still shipping?", "polygon-ecosystem-token", "Polygon"),
        ("Analyze Curve", "curve-dao-token", "Curve"),
        ("tell me about the sandbox", "the-sandbox", "the sandbox"),
        ("Curve DAO", "curve-dao-token", "Curve DAO"),
        ("the sandbox", "the-sandbox", "the sandbox"),
        ("ethereum name service", "ethereum-name-service", "ethereum name service"),
        ("CRV", "curve-dao-token", "CRV"),
        ("$ENA", "ethena", "$ENA"),
        ("ENA", "ethena", "ENA"),
        ("eth", "ethereum", "eth"),
        ("avax", "avalanche-2", "avax"),
        ("ens", "ethereum-name-service", "ens"),
        # tickers, names, ids, aliases
        ("BTC", "bitcoin", "BTC"),
        ("btc", "bitcoin", "btc"),
        ("Bitcoin", "bitcoin", "Bitcoin"),
        ("what is the price of bitcoin right now?", "bitcoin", "bitcoin"),
        ("Just bought some ETH", "ethereum", "ETH"),
        ("gas fees on ethereum are high", "ethereum", "ethereum"),
        ("XRP or ADA?", "ripple", "XRP"),
        ("xrp", "ripple", "xrp"),
        ("bnb chain", "binancecoin", "bnb chain"),
        ("binance coin", "binancecoin", "binance coin"),
        ("matic", "polygon-ecosystem-token", "matic"),
        ("avalanche-2", "avalanche-2", "avalanche-2"),
        ("ether.fi", "ether-fi", "ether.fi"),
        ("yearn.finance", "yearn-finance", "yearn.finance"),
        ("1inch", "1inch", "1inch"),
        ("dogwifhat", "dogwifcoin", "dogwifhat"),
        ("WIF", "dogwifcoin", "WIF"),
        ("shiba inu price", "shiba-inu", "shiba inu"),
        ("wrapped bitcoin", "wrapped-bitcoin", "wrapped bitcoin"),
        ("bitcoin cash vs bitcoin", "bitcoin-cash", "bitcoin cash"),
        ("ETH Classic", "ethereum-classic", "ETH Classic"),
        ("near protocol", "near", "near protocol"),
        ("NEAR", "near", "NEAR"),
        ("internet computer", "internet-computer", "internet computer"),
        ("The Graph", "the-graph", "The Graph"),
        ("Uniswap's roadmap", "uniswap", "Uniswap"),
        ("what are people saying about solana", "solana", "solana"),
        ("compare ETH and SOL", "ethereum", "ETH"),
        ("magic eden", "magic-eden", "magic eden"),
        ("TRUMP coin", "official-trump", "TRUMP coin"),
        ("polkadot", "polkadot", "polkadot"),
        ("DOT price", "polkadot", "DOT"),
        ("chainlink", "chainlink", "chainlink"),
        ("thoughts on $W", "wormhole", "$W"),
        ("$ME", "magic-eden", "$ME"),
        ("hyperliquid", "hyperliquid", "hyperliquid"),
        ("is lido safe?", "lido-dao", "lido"),
        # everyday words the sentence treats as a coin
        ("research link", "chainlink", "link"),
        ("$LINK", "chainlink", "$LINK"),
        ("LINK price", "chainlink", "LINK"),
        ("price of link", "chainlink", "link"),
        ("sentiment on link", "chainlink", "link"),
        ("LINK/USDT", "chainlink", "LINK"),
        ("link", "chainlink", "link"),
        ("ton price", "the-open-network", "ton"),
        ("ape price", "apecoin", "ape"),
        ("ONE token", "harmony", "ONE"),
        ("research harmony", "harmony", "harmony"),
        ("the graph", "the-graph", "the graph"),
        # symbol collision: Toncoin and Tokamak Network are both TON
        ("TON", "the-open-network", "TON"),
        ("$TON", "the-open-network", "$TON"),
    ],
)
def test_resolves_one_exact_coin(text: str, coin_id: str, matched: str) -> None:
    resolution = resolve_offline(text, INDEX)
    assert resolution.project is not None, text
    assert resolution.project.id == coin_id
    assert resolution.matched == matched
    assert resolution.method in ("index", "alias", "symbol")
    assert resolution.suggestions == []


@pytest.mark.parametrize(
    "text",
    [
        "send me the link",
        "check the link in bio",
        "a ton of people",
        "explain the bonding curve",
        "check the graph",
        "this is NOT financial advice",
        "it's about time",
        "open the app",
        "what's up with ai coins",
        "me and my friends",
        "people are bullish",
        "i just want the sun",
        "we should ape in",
        "ape into it",
        "one more question",
        "what does Trump say about crypto",
        "is it safe?",
        "how's the weather",
        "hello there",
        "how's the market today",
        "what about its team?",
        "gas is expensive today",
        "ETH near ATH",  # ETH, not Aethir (ATH)
    ],
)
def test_everyday_words_are_not_coins(text: str) -> None:
    resolution = resolve_offline(text, INDEX)
    project_id = resolution.project.id if resolution.project else None
    assert project_id in (None, "ethereum"), (text, project_id)
    if "ETH" not in text:
        assert resolution.project is None and resolution.suggestions == [], text


@pytest.mark.parametrize(
    ("text", "coin_id"),
    [
        ("how is etherium doing", "ethereum"),
        ("uniswp", "uniswap"),
        ("polkadott", "polkadot"),
        ("avalance", "avalanche-2"),
        ("solanna news", "solana"),
        ("bitcon", "bitcoin"),
        ("chainlnk", "chainlink"),
        ("dogecion", "dogecoin"),
        ("arbitrun", "arbitrum"),
    ],
)
def test_close_unambiguous_typos_resolve(text: str, coin_id: str) -> None:
    resolution = resolve_offline(text, INDEX)
    assert resolution.project is not None and resolution.project.id == coin_id
    assert resolution.method == "fuzzy"


def test_a_distant_typo_only_suggests() -> None:
    resolution = resolve_offline("cardona", INDEX)
    assert resolution.project is None
    assert [p.id for p in resolution.suggestions][:1] == ["cardano"]


def test_unknown_words_resolve_to_nothing() -> None:
    resolution = resolve_offline("asdfgh coin", INDEX)
    assert resolution.project is None and resolution.method == "none"


def test_upper_case_tickers_count_unless_the_message_is_shouted() -> None:
    assert resolve_offline("WHAT IS THE LINK PRICE", INDEX).project is not None  # cue: price
    assert resolve_offline("SEND ME THE LINK NOW PLEASE", INDEX).project is None


def test_collision_goes_to_the_highest_market_cap() -> None:
    index = CoinIndex(
        [
            IndexEntry(id="small-ape", symbol="APE", name="Small Ape", market_cap_rank=900),
            IndexEntry(id="apecoin", symbol="APE", name="ApeCoin", market_cap_rank=98),
            IndexEntry(id="unranked-ape", symbol="APE", name="Unranked Ape"),
        ]
    )
    for text in ("APE", "$APE", "ape price"):
        resolution = resolve_offline(text, index)
        assert resolution.project is not None and resolution.project.id == "apecoin", text


def test_longest_name_wins_over_its_first_word() -> None:
    mention = find_project_mention("is ethereum name service undervalued?", INDEX)
    assert mention is not None and mention.entry.id == "ethereum-name-service"


def test_a_dollar_ticker_beats_a_plain_name() -> None:
    mention = find_project_mention("is solana better than $ETH", INDEX)
    assert mention is not None and mention.entry.id == "ethereum"


def test_known_contract_addresses_resolve_offline() -> None:
    uni = resolve_offline("what is 0x1F9840a85d5aF5bf1D1762F925BDADdC4201F984?", INDEX)
    assert uni.project is not None and uni.project.id == "uniswap" and uni.method == "contract"
    usdc = resolve_offline("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", INDEX)
    assert usdc.project is not None and usdc.project.id == "usd-coin"
    assert next(iter(usdc.project.platforms)) == "solana"


def test_search_query_keeps_only_unknown_words() -> None:
    assert search_query("tell me about zerebro") == "zerebro"
    assert search_query("what about its team?") is None
    assert search_query("send me the link") is None


# --- live fallbacks through a fake CoinGecko -------------------------------------------------


class FakeCoinGecko:
    """Serves /search and /coins/{platform}/contract/{address} with bodies in CoinGecko's shape."""

    def __init__(
        self,
        *,
        search: dict[str, list[dict[str, object]]] | None = None,
        contracts: dict[tuple[str, str], dict[str, object]] | None = None,
        fail: bool = False,
    ) -> None:
        self.search = search or {}
        self.contracts = contracts or {}
        self.fail = fail
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail:
            raise httpx.ConnectError("connection refused", request=request)
        parts = request.url.path.split("/")
        if parts[-1] == "search":
            return httpx.Response(
                200,
                json={
                    "coins": self.search.get(request.url.params["query"].lower(), []),
                    "exchanges": [],
                    "nfts": [],
                },
            )
        if len(parts) >= 4 and parts[-2] == "contract":
            body = self.contracts.get((parts[-3], parts[-1]))
            if body is None:
                return httpx.Response(404, json={"error": "coin not found"})
            return httpx.Response(200, json=body)
        return httpx.Response(404, json={"error": "not found"})


def _coin(cid: str, symbol: str, name: str, rank: int | None) -> dict[str, object]:
    return {
        "id": cid,
        "name": name,
        "api_symbol": cid,
        "symbol": symbol,
        "market_cap_rank": rank,
        "thumb": "https://example.invalid/t.png",
        "large": "https://example.invalid/l.png",
    }


CAKE_ON_BSC = "0x0e09fabb73bd3ade0a17ecc321fd13a19e81ce82"
UNLISTED = "0x" + "12" * 20


async def test_contract_address_detects_its_chain(deps: Deps, with_http: WithHttp) -> None:
    address = "0x" + "ab" * 20
    body = {
        "id": "some-bsc-token",
        "symbol": "sbt",
        "name": "Some BSC Token",
        "asset_platform_id": "binance-smart-chain",
        "market_cap_rank": 812,
        "platforms": {"binance-smart-chain": address, "ethereum": "0x" + "cd" * 20},
        "links": {"repos_url": {"github": ["https://github.com/some-org/token", ""]}},
        "market_data": {"market_cap_rank": 812},
    }
    fake = FakeCoinGecko(contracts={("binance-smart-chain", address): body})
    resolution = await resolve_project(
        with_http(deps, httpx.MockTransport(fake)),
        f"is {address.upper().replace('0X', '0x')} a scam?",
    )
    assert resolution.project is not None and resolution.method == "contract"
    assert resolution.project.display == "Some BSC Token (SBT)"
    assert next(iter(resolution.project.platforms)) == "binance-smart-chain"
    assert resolution.project.github_repos == ["some-org/token"]
    assert resolution.matched == address
    platforms_tried = [r.url.path.split("/")[-3] for r in fake.requests]
    assert platforms_tried == ["ethereum", "binance-smart-chain"]


async def test_unknown_contract_returns_nothing(deps: Deps, with_http: WithHttp) -> None:
    fake = FakeCoinGecko()
    resolution = await resolve_project(with_http(deps, httpx.MockTransport(fake)), UNLISTED)
    assert resolution.project is None and resolution.suggestions == []
    assert len(fake.requests) == 7  # every common platform was tried


async def test_contract_lookup_failure_does_not_raise(deps: Deps, with_http: WithHttp) -> None:
    fake = FakeCoinGecko(fail=True)
    resolution = await resolve_project(with_http(deps, httpx.MockTransport(fake)), UNLISTED)
    assert resolution.project is None and len(fake.requests) == 1


async def test_known_contract_needs_no_network(deps: Deps, with_http: WithHttp) -> None:
    fake = FakeCoinGecko(fail=True)
    resolution = await resolve_project(
        with_http(deps, httpx.MockTransport(fake)), f"analyze {CAKE_ON_BSC}"
    )
    assert resolution.project is not None and resolution.project.id == "pancakeswap-token"
    assert fake.requests == []


async def test_live_search_finds_names_the_index_lacks(deps: Deps, with_http: WithHttp) -> None:
    fake = FakeCoinGecko(
        search={
            "zerebro": [
                _coin("zerebro-copy", "ZEREBRO", "Zerebro Copy", None),
                _coin("zerebro", "ZEREBRO", "Zerebro", 488),
            ]
        }
    )
    live = with_http(deps, httpx.MockTransport(fake))
    resolution = await resolve_project(live, "tell me about zerebro")
    assert resolution.project is not None and resolution.project.id == "zerebro"
    assert resolution.method == "search" and resolution.matched == "zerebro"
    assert resolution.project.display == "Zerebro (ZEREBRO)"
    again = await resolve_project(live, "research zerebro please")
    assert again.project is not None and again.project.id == "zerebro"
    assert len(fake.requests) == 1  # the second ask was answered from Redis


async def test_live_search_without_exact_match_suggests(deps: Deps, with_http: WithHttp) -> None:
    fake = FakeCoinGecko(
        search={
            "solname": [
                _coin("solana-name-service", "SNS", "SNS", 1900),
                _coin("solana", "SOL", "Solana", 6),
            ]
        }
    )
    resolution = await resolve_project(
        with_http(deps, httpx.MockTransport(fake)), "research solname"
    )
    assert resolution.project is None
    assert [p.id for p in resolution.suggestions][:2] == ["solana", "solana-name-service"]


async def test_unknown_coin_with_empty_search(deps: Deps, with_http: WithHttp) -> None:
    fake = FakeCoinGecko()
    resolution = await resolve_project(with_http(deps, httpx.MockTransport(fake)), "asdfgh coin")
    assert resolution.project is None and resolution.suggestions == []
    assert [r.url.params["query"] for r in fake.requests] == ["asdfgh"]


async def test_search_failure_falls_back_to_index_suggestions(
    deps: Deps, with_http: WithHttp
) -> None:
    fake = FakeCoinGecko(fail=True)
    resolution = await resolve_project(
        with_http(deps, httpx.MockTransport(fake)), "what about cardona?"
    )
    assert resolution.project is None
    assert [p.id for p in resolution.suggestions][:1] == ["cardano"]
    nothing = await resolve_project(with_http(deps, httpx.MockTransport(fake)), "asdfgh coin")
    assert nothing.project is None and nothing.suggestions == []


async def test_everyday_sentences_make_no_network_call(deps: Deps, with_http: WithHttp) -> None:
    fake = FakeCoinGecko()
    live = with_http(deps, httpx.MockTransport(fake))
    for text in ("send me the link", "what about its team?", "is it safe?", ""):
        resolution = await resolve_project(live, text)
        assert resolution.project is None and resolution.suggestions == []
    assert fake.requests == []


async def test_indexed_coins_make_no_network_call(deps: Deps, with_http: WithHttp) -> None:
    fake = FakeCoinGecko(fail=True)
    resolution = await resolve_project(
        with_http(deps, httpx.MockTransport(fake)), "is the PEPE team legit?"
    )
    assert resolution.project is not None and resolution.project.display == "Pepe (PEPE)"
    assert fake.requests == []


async def test_a_longer_name_beats_its_first_word(deps: Deps, with_http: WithHttp) -> None:
    fake = FakeCoinGecko(
        search={
            "bitcoin gold": [
                _coin("bitcoin-gold", "BTG", "Bitcoin Gold", 700),
                _coin("bitcoin", "BTC", "Bitcoin", 1),
            ]
        }
    )
    offline = await resolve_project(
        with_http(deps, httpx.MockTransport(FakeCoinGecko(fail=True))), "tell me about Bitcoin Gold"
    )
    assert offline.project is not None and offline.project.id == "bitcoin"
    resolution = await resolve_project(
        with_http(deps, httpx.MockTransport(fake)), "tell me about Bitcoin Gold"
    )
    assert resolution.project is not None and resolution.project.id == "bitcoin-gold"
    assert resolution.method == "search" and resolution.matched == "Bitcoin Gold"


async def test_a_capitalised_word_after_a_name_keeps_the_name(
    deps: Deps, with_http: WithHttp
) -> None:
    fake = FakeCoinGecko()
    resolution = await resolve_project(
        with_http(deps, httpx.MockTransport(fake)), "Is Solana Down?"
    )
    assert resolution.project is not None and resolution.project.id == "solana"


# --- parsing CoinGecko bodies ----------------------------------------------------------------


def test_pick_search_result_prefers_ranked_exact_matches() -> None:
    coins = [_coin("pepe-unranked", "PEPE", "Pepe", None), _coin("pepe", "PEPE", "Pepe", 31)]
    exact, ranked = pick_search_result(coins, "pepe")
    assert exact is not None and exact.id == "pepe"
    assert [p.id for p in ranked] == ["pepe", "pepe-unranked"]
    assert pick_search_result([_coin("x", "X", "Xcoin", None)], "xcoin")[0] is None
    both = [_coin("bar", "BAR", "Bar", 300), _coin("foo-bar", "FB", "Foo Bar", 900)]
    whole, _ = pick_search_result(both, "foo bar")
    assert whole is not None and whole.id == "foo-bar"


def test_project_from_coin_ignores_bodies_without_an_id() -> None:
    assert project_from_coin({"error": "coin not found"}) is None
    assert project_from_coin([]) is None


@pytest.mark.contract
def test_search_fixture_contract() -> None:
    path = SHARED_FIXTURES / "coingecko" / "search_sol_trimmed_omarchy.json"
    if not path.exists():
        pytest.skip("shared fixtures not present")
    coins = json.loads(path.read_text())["coins"]
    exact, ranked = pick_search_result(coins, "sol")
    assert exact is not None and exact.id == "solana" and exact.display == "Solana (SOL)"
    assert [p.market_cap_rank for p in ranked] == sorted(p.market_cap_rank or 0 for p in ranked)
    solv, _ = pick_search_result(coins, "Solv Protocol")
    assert solv is not None and solv.id == "solv-protocol"
    # "Solar" is the name of swipe (SXP): a name match counts, not just the ticker
    solar, _ = pick_search_result(coins, "solar")
    assert solar is not None and solar.id == "swipe"


@pytest.mark.contract
async def test_search_fixture_served_live(deps: Deps, with_http: WithHttp) -> None:
    path = SHARED_FIXTURES / "coingecko" / "search_sol_trimmed_omarchy.json"
    if not path.exists():
        pytest.skip("shared fixtures not present")
    body = json.loads(path.read_text())

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/search")
        return httpx.Response(200, json=body)

    resolution = await resolve_project(
        with_http(deps, httpx.MockTransport(handler)), "what is Solayer?"
    )
    assert resolution.project is not None and resolution.project.display == "Solayer (LAYER)"


@pytest.mark.contract
def test_contract_fixture_contract() -> None:
    path = SHARED_FIXTURES / "coingecko" / "coins_ethereum_contract_usdt_2021-08-13.json"
    if not path.exists():
        pytest.skip("shared fixtures not present")
    project = project_from_coin(
        json.loads(path.read_text()),
        platform="ethereum",
        address="0xdAC17F958D2ee523a2206206994597C13D831ec7",
    )
    assert project is not None and project.display == "Tether (USDT)"
    assert next(iter(project.platforms)) == "ethereum"
    assert project.platforms["ethereum"] == "0xdac17f958d2ee523a2206206994597c13d831ec7"
    assert project.platforms["solana"] == "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB"
    assert project.market_cap_rank == 4


@pytest.mark.parametrize("text", ["good morning", "gm!", "hello there", "help", "thanks!"])
async def test_small_talk_makes_no_upstream_call(
    deps: Deps, with_http: WithHttp, text: str
) -> None:
    calls: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, json={"coins": []})

    resolution = await resolve_project(with_http(deps, httpx.MockTransport(record)), text)
    assert resolution.project is None
    assert calls == []
