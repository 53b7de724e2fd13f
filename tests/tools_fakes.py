"""Fake data sources for the tools tests: small synthetic bodies in the real response shapes
(modelled on ../shared/fixtures), served through an httpx.MockTransport that counts calls."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx

from tools.results import Project

UNI_ADDRESS = "0x1f9840a85d5af5bf1d1762f925bdaddc4201f984"
UNISWAP = Project(
    id="uniswap",
    symbol="UNI",
    name="Uniswap",
    market_cap_rank=20,
    platforms={"ethereum": UNI_ADDRESS},
)
BITCOIN = Project(id="bitcoin", symbol="BTC", name="Bitcoin", market_cap_rank=1)
DAY_MS = 86_400_000


def coin_body(coin_id: str = "uniswap") -> dict[str, Any]:
    """Synthetic `/coins/{id}` (shape of coingecko/coins_bitcoin_2021-05-15.json)."""
    native = coin_id == "bitcoin"
    return {
        "id": coin_id,
        "symbol": "btc" if native else "uni",
        "name": "Bitcoin" if native else "Uniswap",
        "platforms": {"": ""} if native else {"ethereum": UNI_ADDRESS},
        "links": {
            "homepage": ["https://uniswap.org/", "", ""],
            "blockchain_site": ["https://etherscan.io/token/" + UNI_ADDRESS, ""],
            "twitter_screen_name": "Uniswap",
            "telegram_channel_identifier": "",
            "subreddit_url": "https://www.reddit.com/r/Uniswap/",
            "repos_url": {"github": ["https://github.com/Uniswap/v3-core"], "bitbucket": []},
        },
        "sentiment_votes_up_percentage": 70.0,
        "sentiment_votes_down_percentage": 30.0,
        "market_cap_rank": 20,
        "market_data": {
            "current_price": {"usd": 10.0},
            "market_cap": {"usd": 6_000_000_000},
            "market_cap_rank": 20,
            "total_volume": {"usd": 300_000_000},
            "fully_diluted_valuation": {"usd": 10_000_000_000},
            "ath": {"usd": 44.92},
            "ath_change_percentage": {"usd": -77.7},
            "price_change_percentage_24h": 2.5,
            "price_change_percentage_7d": -4.0,
            "total_value_locked": None,
            "mcap_to_tvl_ratio": None,
            "circulating_supply": 600_000_000.0,
            "total_supply": 1_000_000_000.0,
            "max_supply": 1_000_000_000.0,
        },
        "community_data": {"twitter_followers": 1000, "reddit_subscribers": None},
        "tickers": [
            {
                "market": {"name": "Binance"},
                "converted_volume": {"usd": 200_000_000},
                "trust_score": "green",
                "is_anomaly": False,
                "is_stale": False,
            },
            {
                "market": {"name": "Coinbase"},
                "converted_volume": {"usd": 60_000_000},
                "trust_score": "green",
                "is_anomaly": False,
                "is_stale": False,
            },
            {
                "market": {"name": "Tiny DEX"},
                "converted_volume": {"usd": 40_000_000},
                "trust_score": "yellow",
                "is_anomaly": False,
                "is_stale": False,
            },
            {
                "market": {"name": "Odd"},
                "converted_volume": {"usd": 999_000_000},
                "trust_score": "red",
                "is_anomaly": True,
                "is_stale": False,
            },
        ],
        # a live service's payload is about a minute old
        "last_updated": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    }


def markets_row(
    coin_id: str, price: float | None = None, last_updated: datetime | None = None
) -> dict[str, Any]:
    """One `/coins/markets` row (shape of coingecko/coins_markets_bitcoin_usd_2021-05-15.json)."""
    coin = coin_body(coin_id)
    md = coin["market_data"]
    return {
        "id": coin_id,
        "symbol": coin["symbol"],
        "name": coin["name"],
        "current_price": price if price is not None else md["current_price"]["usd"],
        "market_cap": md["market_cap"]["usd"],
        "market_cap_rank": coin["market_cap_rank"],
        "fully_diluted_valuation": md["fully_diluted_valuation"]["usd"],
        "total_volume": md["total_volume"]["usd"],
        "price_change_percentage_24h": md["price_change_percentage_24h"],
        "price_change_percentage_24h_in_currency": md["price_change_percentage_24h"],
        "price_change_percentage_7d_in_currency": md["price_change_percentage_7d"],
        "ath": md["ath"]["usd"],
        "ath_change_percentage": md["ath_change_percentage"]["usd"],
        "last_updated": (last_updated or datetime.now(UTC)).isoformat(),
    }


def chart_body(days: int = 365, supply_growth: float = 0.05) -> dict[str, Any]:
    """Synthetic daily market chart: price wobbles ±3 %, supply grows `supply_growth` a year."""
    now_ms = int(time.time() * 1000) // DAY_MS * DAY_MS
    prices, caps, vols = [], [], []
    for i in range(days + 1):
        ms = now_ms - (days - i) * DAY_MS
        price = 10.0 * (1.03 if i % 2 else 0.97)
        supply = 600_000_000 * (1 + supply_growth) ** ((i - days) / 365)
        prices.append([ms, price])
        caps.append([ms, price * supply])
        vols.append([ms, 3e8])
    return {"prices": prices, "market_caps": caps, "total_volumes": vols}


def protocols_body() -> list[dict[str, Any]]:
    return [
        {
            "id": "1",
            "name": "Uniswap V3",
            "slug": "uniswap-v3",
            "gecko_id": "uniswap",
            "parentProtocol": "parent#uniswap",
            "tvl": 3.5e9,
        },
        {"id": "2", "name": "Other", "slug": "other", "gecko_id": None},
    ]


def protocol_body() -> dict[str, Any]:
    """Synthetic `/protocol/uniswap` with the keys DATA_SOURCES documents."""
    return {
        "id": "parent#uniswap",
        "name": "Uniswap",
        "url": "https://uniswap.org/",
        "audits": "2",
        "audit_note": None,
        "gecko_id": "uniswap",
        "twitter": "Uniswap",
        "audit_links": [
            "https://github.com/Uniswap/v3-core/tree/main/audits",
            "https://github.com/ConsenSys/Uniswap-audit-report-2018-12",
        ],
        "github": ["Uniswap"],
        "currentChainTvls": {
            "Ethereum": 3_000_000_000,
            "Arbitrum": 500_000_000,
            "Ethereum-staking": 100_000_000,
            "staking": 100_000_000,
            "borrowed": 200_000_000,
            "pool2": 5_000_000,
        },
        "tvl": [{"date": 1700000000, "totalLiquidityUSD": 3.4e9}],
        "raises": [
            {
                "date": 1598400000,
                "round": "Series A",
                "amount": 11,
                "leadInvestors": ["Andreessen Horowitz"],
                "otherInvestors": ["Paradigm", "Union Square Ventures"],
            },
            {
                "round": "Series B",
                "leadInvestors": ["Polychain Capital"],
                "otherInvestors": ["Paradigm"],
            },
        ],
    }


def goplus_body(address: str = UNI_ADDRESS, **overrides: Any) -> dict[str, Any]:
    """Synthetic GoPlus envelope (shape of goplus/token_security_bsc_cake…json)."""
    token = {
        "is_open_source": "1",
        "is_proxy": "0",
        "is_mintable": "1",
        "owner_address": "0x" + "ab" * 20,
        "owner_percent": "0.01",
        "creator_percent": "0.000000",
        "can_take_back_ownership": "0",
        "owner_change_balance": "0",
        "hidden_owner": "0",
        "selfdestruct": "0",
        "is_honeypot": "0",
        "cannot_sell_all": "0",
        "buy_tax": "0",
        "sell_tax": "0",
        "transfer_pausable": "0",
        "is_blacklisted": "0",
        "slippage_modifiable": "0",
        "holder_count": "380000",
        "trust_list": "1",
        "is_in_cex": {"listed": "1", "cex_list": ["Binance"]},
        "holders": [
            {
                "address": "0x000000000000000000000000000000000000dead",
                "tag": "",
                "is_contract": 0,
                "balance": "1",
                "percent": "0.40",
                "is_locked": 1,
                "locked_detail": [
                    {
                        "amount": "1",
                        "end_time": "2027-01-01T00:00:00+00:00",
                        "opt_time": "2026-01-01T00:00:00+00:00",
                    }
                ],
            },
            {
                "address": "0xf977814e90da44bfa03b6295a0616a897441acec",
                "tag": "",
                "is_contract": 0,
                "balance": "1",
                "percent": "0.10",
                "is_locked": 0,
            },
            {
                "address": "0x" + "11" * 20,
                "tag": "",
                "is_contract": 0,
                "balance": "1",
                "percent": "0.05",
                "is_locked": 0,
            },
            {
                "address": "0x" + "22" * 20,
                "tag": "",
                "is_contract": 0,
                "balance": "1",
                "percent": "0.03",
                "is_locked": 0,
            },
        ],
    }
    token.update(overrides)
    return {"code": 1, "message": "OK", "result": {address: token}}


def github_repo_body(full_name: str = "Uniswap/v3-core") -> dict[str, Any]:
    pushed = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "full_name": full_name,
        "html_url": f"https://github.com/{full_name}",
        "stargazers_count": 4000,
        "forks_count": 2500,
        "pushed_at": pushed,
        "archived": False,
        "fork": False,
    }


def commit_activity_body() -> list[dict[str, Any]]:
    """52 weeks ending this week; 10 commits a week (130 in the last 13 weeks)."""
    week = int(time.time()) // 604800 * 604800
    return [
        {"days": [0, 2, 2, 2, 2, 2, 0], "total": 10, "week": week - (51 - i) * 604800}
        for i in range(52)
    ]


def contributors_body() -> list[dict[str, Any]]:
    week = int(time.time()) // 604800 * 604800
    recent = [{"w": week - i * 604800, "a": 1, "d": 1, "c": 2} for i in range(4)]
    old = [{"w": week - 40 * 604800, "a": 1, "d": 1, "c": 5}]
    return [{"author": {"login": f"dev{i}"}, "total": 20, "weeks": recent} for i in range(4)] + [
        {"author": {"login": "gone"}, "total": 5, "weeks": old}
    ]


def commits_body(n: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "sha": f"{i:040x}",
            "author": {"login": f"dev{i % 3}"},
            "commit": {"author": {"email": f"dev{i % 3}@example.org"}},
        }
        for i in range(n)
    ]


def rss_body(items: list[tuple[str, str, float]] | None = None) -> bytes:
    """RSS 2.0 like coindesk_rss_…xml; items are (title, description, age in hours)."""
    if items is None:
        items = [
            ("Uniswap volume hits record as traders turn bullish", "Strong growth on the DEX.", 2),
            ("Uniswap announces partnership with Big Bank", "An integration for payments.", 5),
            ("UNI rallies after fee switch vote", "Holders celebrate a great win.", 30),
            ("Uniswap hit by exploit rumours, team denies hack", "No funds lost.", 60),
            ("Bitcoin slides below support", "Traders are bearish.", 3),
        ]
    now = datetime.now(UTC)
    body = "".join(
        f"<item><title><![CDATA[{t}]]></title><link>https://news.example/{i}</link>"
        f'<guid isPermaLink="false">{i}</guid><pubDate>{format_datetime(now - timedelta(hours=h))}'
        f"</pubDate><description><![CDATA[{d}]]></description><dc:description/></item>"
        for i, (t, d, h) in enumerate(items)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss xmlns:dc="http://purl.org/dc/elements/1.1/" '
        f'version="2.0"><channel><title>Example</title><link>https://news.example/</link>{body}'
        "</channel></rss>"
    ).encode()


FNG_BODY = {
    "name": "Fear and Greed Index",
    "metadata": {"error": None},
    "data": [
        {
            "value": "69",
            "value_classification": "Greed",
            "timestamp": "1788825600",
            "time_until_update": "2723",
        }
    ],
}

# `/global` (shape of CoinGecko's documented response; updated_at is unix seconds)
GLOBAL_BODY = {
    "data": {
        "active_cryptocurrencies": 13000,
        "total_market_cap": {"usd": 2_400_000_000_000.0, "btc": 39_000_000.0},
        "total_volume": {"usd": 98_000_000_000.0, "btc": 1_600_000.0},
        "market_cap_change_percentage_24h_usd": -1.25,
        "market_cap_percentage": {"btc": 52.1, "eth": 17.3},
        "updated_at": 1788825600,
    }
}
# The top coins by market cap: (id, symbol, name, price, 24 h %, 7 d %)
TOP_COINS = [
    ("bitcoin", "btc", "Bitcoin", 97_000.0, 1.2, 4.1),
    ("ethereum", "eth", "Ethereum", 3_600.0, -0.8, 6.3),
    ("tether", "usdt", "Tether", 1.0, 0.0, 0.01),
    ("solana", "sol", "Solana", 240.0, 5.4, 18.2),
    ("ripple", "xrp", "XRP", 2.4, -3.1, -7.5),
    ("dogecoin", "doge", "Dogecoin", 0.41, 9.8, 2.2),
    ("cardano", "ada", "Cardano", 1.05, -6.2, 11.0),
    ("avalanche-2", "avax", "Avalanche", 52.0, 2.3, -4.4),
    ("chainlink", "link", "Chainlink", 24.0, -1.5, 25.7),
    ("uniswap", "uni", "Uniswap", 10.0, 2.5, -12.0),
]


def top_markets_body() -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "id": cid,
            "symbol": sym,
            "name": name,
            "current_price": price,
            "market_cap": price * 1e9 / (rank + 1),
            "market_cap_rank": rank + 1,
            "total_volume": price * 1e7,
            "price_change_percentage_24h": d1,
            "price_change_percentage_24h_in_currency": d1,
            "price_change_percentage_7d_in_currency": d7,
            "last_updated": now,
        }
        for rank, (cid, sym, name, price, d1, d7) in enumerate(TOP_COINS)
    ]


Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )


@dataclass
class FakeSources:
    """Routes by URL path; `queue` overrides (FIFO) let a test script 429s, 202s or failures."""

    latency_s: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    queue: dict[str, list[Reply]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)  # hosts that refuse connections
    # CoinGecko ids the fake knows besides uniswap and bitcoin (served as copies of uniswap)
    extra_coins: set[str] = field(default_factory=set)

    def script(self, route: str, *replies: Reply) -> None:
        self.queue.setdefault(route, []).extend(replies)

    def route(self, request: httpx.Request) -> str:
        host, path = request.url.host, request.url.path
        if "coingecko" in host:
            if path.endswith("/market_chart"):
                return "coingecko:chart"
            if path.endswith("/coins/markets"):
                return "coingecko:markets"
            if path.endswith("/search/trending"):
                return "coingecko:trending"
            if path.endswith("/global"):
                return "coingecko:global"
            if path.endswith("/search"):
                return "coingecko:search"
            return "coingecko:coin"
        if "llama" in host:
            return "defillama:protocols" if path.endswith("/protocols") else "defillama:protocol"
        if "gopluslabs" in host:
            return "goplus"
        if "github" in host:
            for part in ("commit_activity", "contributors", "commits"):
                if path.endswith(part):
                    return f"github:{'stats_' if 'stats' in path else ''}{part}"
            return "github:orgs" if path.startswith("/orgs/") else "github:repo"
        if "alternative.me" in host:
            return "feargreed"
        return f"rss:{host}"

    def default(self, route: str, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if route == "coingecko:coin":
            coin_id = path.rsplit("/", 1)[-1]
            if coin_id in self.extra_coins:
                return json_response({**coin_body("uniswap"), "id": coin_id, "platforms": {}})
            if coin_id not in ("uniswap", "bitcoin"):
                return json_response({"error": "coin not found"}, 404)
            return json_response(coin_body(coin_id))
        if route == "coingecko:markets" and not request.url.params.get("ids"):
            # the top coins by market cap (`order=market_cap_desc&per_page=N`)
            per_page = int(request.url.params.get("per_page", "100"))
            return json_response(top_markets_body()[:per_page])
        if route == "coingecko:markets":
            ids = [i for i in request.url.params.get("ids", "").split(",") if i]
            known = {"uniswap", "bitcoin", *self.extra_coins}
            return json_response(
                [
                    {**markets_row("uniswap"), "id": i} if i in self.extra_coins else markets_row(i)
                    for i in ids
                    if i in known
                ]
            )
        bodies: dict[str, Callable[[], Any]] = {
            "coingecko:chart": chart_body,
            "coingecko:search": lambda: {"coins": [], "exchanges": [], "nfts": []},
            "coingecko:trending": lambda: {
                "coins": [
                    {
                        "item": {
                            "id": "uniswap",
                            "name": "Uniswap",
                            "symbol": "UNI",
                            "market_cap_rank": 20,
                            "score": 0,
                        }
                    }
                ],
                "exchanges": [],
            },
            "defillama:protocols": protocols_body,
            "defillama:protocol": protocol_body,
            "goplus": goplus_body,
            "github:repo": github_repo_body,
            "github:stats_commit_activity": commit_activity_body,
            "github:stats_contributors": contributors_body,
            "github:commits": commits_body,
            "github:orgs": lambda: [github_repo_body()],
            "feargreed": lambda: FNG_BODY,
            "coingecko:global": lambda: GLOBAL_BODY,
        }
        if route.startswith("rss:"):
            return httpx.Response(
                200, content=rss_body(), headers={"content-type": "application/rss+xml"}
            )
        return json_response(bodies[route]())

    async def handler(self, request: httpx.Request) -> httpx.Response:
        route = self.route(request)
        self.calls[route] += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if request.url.host in self.down or route.split(":")[0] in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        pending = self.queue.get(route)
        if pending:
            reply = pending.pop(0)
            return reply(request) if callable(reply) else reply
        return self.default(route, request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def total(self, prefix: str) -> int:
        return sum(n for route, n in self.calls.items() if route.startswith(prefix))


def fast_http(deps: Any) -> Any:
    """Tiny retry waits and a roomy CoinGecko budget so error-path tests take milliseconds."""
    import dataclasses

    from tools.http import HttpOptions, RetryPolicy, configure_http

    settings = deps.settings.model_copy(update={"coingecko_rate_per_min": 1000})
    deps = dataclasses.replace(deps, settings=settings)
    configure_http(
        deps,
        HttpOptions(
            retry=RetryPolicy(
                attempts=3,
                base_wait_s=0.001,
                max_wait_s=0.01,
                retry_after_cap_s=0.05,
                limiter_wait_cap_s=2.0,
            ),
            github_stats_attempts=3,
            github_stats_wait_s=0.0,
        ),
    )
    return deps
