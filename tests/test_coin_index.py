"""The bundled coin index: its facts, merging with `projects`, refreshing from CoinGecko."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from importlib import resources

import httpx
import pytest
from pydantic import SecretStr

from chainlens.deps import Deps
from tools.index import (
    IndexEntry,
    bundled_entries,
    bundled_index,
    compact,
    load_index,
    merge_rows,
    normalize,
    refresh_index,
)
from tools.resolve import get_project, resolve_project

WithHttp = Callable[[Deps, httpx.AsyncBaseTransport], Deps]
RAW = json.loads(resources.files("tools").joinpath("coin_index.json").read_text("utf-8"))
COINS = RAW["coins"]
KNOWN_PLATFORMS = {
    "ethereum",
    "binance-smart-chain",
    "polygon-pos",
    "arbitrum-one",
    "optimistic-ethereum",
    "base",
    "avalanche",
    "solana",
}


# --- integrity of the bundled facts ----------------------------------------------------------


def test_index_says_it_is_approximate_and_refreshed() -> None:
    about = RAW["_about"].lower()
    assert "approximate" in about and "coingecko" in about and "refresh" in about


def test_index_has_a_few_hundred_coins_with_unique_ids() -> None:
    ids = [c["id"] for c in COINS]
    assert 200 <= len(ids) <= 400
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9-]*", i) for i in ids)


def test_every_coin_has_upper_case_symbol_name_and_positive_rank() -> None:
    for c in COINS:
        assert c["symbol"] == c["symbol"].upper() and c["symbol"].strip(), c
        assert c["name"].strip() == c["name"] and c["name"], c
        assert isinstance(c["market_cap_rank"], int) and c["market_cap_rank"] > 0, c
        assert set(c) <= {
            "id",
            "symbol",
            "name",
            "market_cap_rank",
            "aliases",
            "github",
            "platforms",
        }, c


def test_aliases_are_lowercase_and_never_point_to_two_coins() -> None:
    owner: dict[str, str] = {}
    for c in COINS:
        for alias in c.get("aliases", []):
            assert alias == alias.lower().strip() and alias, (c["id"], alias)
    # every name/id/alias key (spaced and compact) must name exactly one coin
    for c in COINS:
        for text in [c["id"], c["name"], *c.get("aliases", [])]:
            for key in {normalize(text), compact(text)}:
                assert owner.setdefault(key, c["id"]) == c["id"], (key, owner[key], c["id"])


def test_platform_addresses_are_well_formed() -> None:
    for c in COINS:
        for platform, address in c.get("platforms", {}).items():
            assert platform in KNOWN_PLATFORMS, (c["id"], platform)
            if platform == "solana":
                assert re.fullmatch(r"[1-9A-HJ-NP-Za-km-z]{32,44}", address), (c["id"], address)
            else:
                assert re.fullmatch(r"0x[0-9a-f]{40}", address), (c["id"], address)


def test_github_entries_are_org_or_org_slash_repo() -> None:
    for c in COINS:
        for repo in c.get("github", []):
            assert re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?", repo), (c["id"], repo)


@pytest.mark.parametrize(
    "coin_id",
    [
        "bitcoin",
        "ethereum",
        "solana",
        "cardano",
        "ripple",
        "dogecoin",
        "avalanche-2",
        "litecoin",
        "the-open-network",
    ],
)
def test_native_coins_have_no_contract(coin_id: str) -> None:
    entry = bundled_index().get(coin_id)
    assert entry is not None and dict(entry.platforms) == {}


@pytest.mark.parametrize(
    ("coin_id", "symbol"),
    [
        ("avalanche-2", "AVAX"),
        ("polygon-ecosystem-token", "POL"),
        ("the-sandbox", "SAND"),
        ("ethereum-name-service", "ENS"),
        ("curve-dao-token", "CRV"),
        ("uniswap", "UNI"),
        ("shiba-inu", "SHIB"),
        ("pepe", "PEPE"),
        ("ethena", "ENA"),
        ("arbitrum", "ARB"),
        ("optimism", "OP"),
        ("aave", "AAVE"),
        ("solana", "SOL"),
        ("ripple", "XRP"),
        ("binancecoin", "BNB"),
        ("the-open-network", "TON"),
        ("wrapped-bitcoin", "WBTC"),
        ("chainlink", "LINK"),
        ("bitcoin", "BTC"),
        ("ethereum", "ETH"),
    ],
)
def test_well_known_coins_carry_their_coingecko_ids(coin_id: str, symbol: str) -> None:
    entry = bundled_index().get(coin_id)
    assert entry is not None and entry.symbol == symbol


def test_well_known_contracts() -> None:
    index = bundled_index()
    uni = index.by_address("0x1F9840a85d5aF5bf1D1762F925BDADdC4201F984")
    usdt = index.by_address("0xdac17f958d2ee523a2206206994597c13d831ec7")
    assert uni is not None and uni[0].id == "uniswap" and uni[1] == "ethereum"
    assert usdt is not None and usdt[0].id == "tether"


def test_project_names_the_coin_it_chose() -> None:
    entry = bundled_index().get("uniswap")
    assert entry is not None
    project = entry.to_project()
    assert project.display == "Uniswap (UNI)"
    assert project.platforms["ethereum"] == "0x1f9840a85d5af5bf1d1762f925bdaddc4201f984"
    assert project.github_repos == ["Uniswap"]


# --- merging with the projects table ---------------------------------------------------------


def _row(
    cid: str,
    symbol: str,
    name: str,
    rank: int | None,
    *,
    aliases: list[str] | None = None,
    platforms: dict[str, str] | None = None,
) -> dict[str, object]:
    return {
        "id": cid,
        "symbol": symbol,
        "name": name,
        "market_cap_rank": rank,
        "aliases": aliases or [],
        "platforms": platforms or {},
    }


def test_merge_refreshed_facts_win_and_bundled_aliases_stay() -> None:
    index = merge_rows(
        bundled_entries(),
        [
            _row("uniswap", "uni", "Uniswap", 25, aliases=["uni v4"]),
            _row("zerebro", "zerebro", "Zerebro", 480),
        ],
    )
    uni = index.get("uniswap")
    assert uni is not None
    assert (uni.symbol, uni.market_cap_rank) == ("UNI", 25)
    assert "uniswap protocol" in uni.aliases and "uni v4" in uni.aliases
    assert uni.github == ("Uniswap",)
    assert uni.platforms["ethereum"].startswith("0x1f98")  # no refreshed platforms: keep ours
    assert index.get("zerebro") is not None
    assert len(index) == len(bundled_entries()) + 1


def test_symbol_collisions_are_ordered_by_market_cap() -> None:
    index = merge_rows(
        bundled_entries(),
        [
            _row("uni-copycat", "UNI", "Uni Copycat", 2400),
            _row("unranked-uni", "UNI", "Unranked Uni", None),
        ],
    )
    assert [e.id for e in index.by_symbol("uni")] == ["uniswap", "uni-copycat", "unranked-uni"]
    assert [e.id for e in index.by_symbol("TON")][:2] == ["the-open-network", "tokamak-network"]


def test_index_entry_is_typed() -> None:
    entry = IndexEntry(id="x", symbol="X", name="X")
    assert entry.to_project().platforms == {}


# --- loading from and refreshing into PostgreSQL ---------------------------------------------


async def test_load_index_without_rows_is_the_bundled_index(deps: Deps) -> None:
    assert len(await load_index(deps)) == len(bundled_entries())


async def test_load_index_sees_rows_written_by_anyone(deps: Deps) -> None:
    await deps.db.execute(
        "INSERT INTO projects (id, symbol, name, market_cap_rank, aliases) "
        "VALUES ('zerebro', 'ZEREBRO', 'Zerebro', 480, '{}')"
    )
    index = await load_index(deps)
    assert index.get("zerebro") is not None
    resolution = await resolve_project(deps, "research Zerebro")
    assert resolution.project is not None and resolution.project.id == "zerebro"
    await deps.db.execute("DELETE FROM projects")
    assert (await load_index(deps)).get("zerebro") is None


def _markets_body(*coins: tuple[str, str, str, int | None]) -> list[dict[str, object]]:
    # the fields /coins/markets returns that the index reads, plus a few it ignores
    return [
        {
            "id": cid,
            "symbol": sym,
            "name": name,
            "market_cap_rank": rank,
            "current_price": 1.0,
            "market_cap": 1_000_000,
            "image": "https://example.invalid/x.png",
            "last_updated": "2025-01-01T00:00:00.000Z",
        }
        for cid, sym, name, rank in coins
    ]


class FakeCoinGecko:
    """A CoinGecko stand-in speaking the real paths and query parameters."""

    def __init__(self, *, fail: bool = False) -> None:
        self.requests: list[httpx.Request] = []
        self.fail = fail

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail:
            raise httpx.ConnectError("no route to CoinGecko", request=request)
        path, params = request.url.path, request.url.params
        if path.endswith("/coins/markets"):
            assert params["vs_currency"] == "usd" and params["order"] == "market_cap_desc"
            assert params["per_page"] == "250"
            if params["page"] == "1":
                return httpx.Response(
                    200,
                    json=_markets_body(
                        ("bitcoin", "btc", "Bitcoin", 1),
                        ("uniswap", "uni", "Uniswap", 19),
                        ("zerebro", "zerebro", "Zerebro", 480),
                        ("mystery", "mys", "Mystery", None),
                    ),
                )
            return httpx.Response(200, json=[])
        if path.endswith("/coins/list"):
            assert params["include_platform"] == "true"
            return httpx.Response(
                200,
                json=[
                    {"id": "bitcoin", "symbol": "btc", "name": "Bitcoin", "platforms": {}},
                    {
                        "id": "uniswap",
                        "symbol": "uni",
                        "name": "Uniswap",
                        "platforms": {
                            "ethereum": "0x1f9840a85d5af5bf1d1762f925bdaddc4201f984",
                            "arbitrum-one": "0xFA7F8980b0f1E64A2062791cc3b0871572f1F7f0",
                        },
                    },
                    {
                        "id": "zerebro",
                        "symbol": "zerebro",
                        "name": "Zerebro",
                        "platforms": {"": ""},
                    },
                    {
                        "id": "not-in-top",
                        "symbol": "nit",
                        "name": "Not In Top",
                        "platforms": {"ethereum": "0x" + "ab" * 20},
                    },
                ],
            )
        return httpx.Response(404, json={"error": "not found"})


async def test_refresh_index_writes_rows_into_postgres(deps: Deps, with_http: WithHttp) -> None:
    fake = FakeCoinGecko()
    written = await refresh_index(with_http(deps, httpx.MockTransport(fake)))
    assert written == 4
    rows = {r["id"]: r for r in await deps.db.fetch("SELECT * FROM projects")}
    assert set(rows) == {"bitcoin", "uniswap", "zerebro", "mystery"}
    assert rows["uniswap"]["symbol"] == "UNI" and rows["uniswap"]["market_cap_rank"] == 19
    assert "uniswap protocol" in rows["uniswap"]["aliases"]  # bundled aliases are kept
    arbitrum = rows["uniswap"]["platforms"]["arbitrum-one"]
    assert arbitrum == "0xfa7f8980b0f1e64a2062791cc3b0871572f1f7f0"  # lower-cased
    assert rows["zerebro"]["platforms"] == {}
    assert rows["mystery"]["market_cap_rank"] is None
    paths = [r.url.path for r in fake.requests]
    assert paths.count("/api/v3/coins/markets") == 2 and paths.count("/api/v3/coins/list") == 1
    assert all("x-cg-demo-api-key" not in r.headers for r in fake.requests)

    index = await load_index(deps)
    uni = index.get("uniswap")
    assert uni is not None and uni.market_cap_rank == 19 and uni.github == ("Uniswap",)
    assert await get_project(deps, "zerebro") is not None


async def test_refresh_twice_updates_rather_than_duplicates(
    deps: Deps, with_http: WithHttp
) -> None:
    fast = with_http(deps, httpx.MockTransport(FakeCoinGecko()))
    await refresh_index(fast)
    await deps.db.execute(
        "UPDATE projects SET aliases = aliases || '{uni v4}' WHERE id = 'uniswap'"
    )
    await refresh_index(fast, include_platforms=False)
    assert await deps.db.fetchval("SELECT count(*) FROM projects") == 4
    row = await deps.db.fetchrow("SELECT aliases, platforms FROM projects WHERE id = 'uniswap'")
    assert row is not None and "uni v4" in row["aliases"] and "arbitrum-one" in row["platforms"]


async def test_refresh_sends_the_demo_key_when_configured(deps: Deps, with_http: WithHttp) -> None:
    fake = FakeCoinGecko()
    keyed = dataclasses.replace(
        deps,
        settings=deps.settings.model_copy(update={"coingecko_api_key": SecretStr("CG-demo-test")}),
    )
    await refresh_index(with_http(keyed, httpx.MockTransport(fake)), pages=1)
    assert fake.requests and all(
        r.headers["x-cg-demo-api-key"] == "CG-demo-test" for r in fake.requests
    )


async def test_refresh_when_coingecko_is_unreachable_writes_nothing(
    deps: Deps, with_http: WithHttp
) -> None:
    fake = FakeCoinGecko(fail=True)
    assert await refresh_index(with_http(deps, httpx.MockTransport(fake))) == 0
    assert await deps.db.fetchval("SELECT count(*) FROM projects") == 0
    assert len(await load_index(deps)) == len(bundled_entries())


async def test_get_project_by_coingecko_id(deps: Deps) -> None:
    project = await get_project(deps, "curve-dao-token")
    assert project is not None and project.display == "Curve DAO (CRV)"
    assert await get_project(deps, "no-such-coin") is None
