"""The market as a whole: overview, trending coins and top movers, cached like the tools.

Questions that name no project ("how is the market today?", "what's trending?", "top gainers
this week") and the daily report's market overview both read these. Every figure keeps its
source and time. Each kind is kept in the Redis hot cache for a short TTL (one upstream fetch
at a time through `tools.cache.single_flight`), and a last good copy is kept for a day: when
every source fails, that copy is served marked stale rather than nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from chainlens import best_effort
from chainlens.deps import Deps
from tools.cache import single_flight
from tools.http import SourceError
from tools.results import utcnow
from tools.sources import coingecko, feargreed
from tools.sources._util import from_unix, iso, num, usd

log = logging.getLogger(__name__)

MarketKind = Literal["overview", "trending", "movers"]
MARKET_KINDS: tuple[MarketKind, ...] = ("overview", "trending", "movers")
HOT_TTL_S: dict[MarketKind, int] = {"overview": 120, "trending": 300, "movers": 180}
PARTIAL_TTL_S = 30  # a result missing a source is retried sooner
LAST_GOOD_TTL_S = 24 * 3600
MOVERS_TOP_N = 100  # movers are ranked among the top N coins by market cap
MOVERS_SHOWN = 5
TRENDING_SHOWN = 7
GLOBAL_URL = "https://www.coingecko.com/en/global-charts"
TRENDING_URL = "https://www.coingecko.com/en/highlights/trending-crypto"
MARKETS_URL = "https://www.coingecko.com/"


class CoinLine(BaseModel):
    """One coin's market figures (a `/coins/markets` row or a trending item)."""

    id: str
    symbol: str
    name: str
    rank: int | None = None
    price_usd: float | None = None
    market_cap_usd: float | None = None
    change_24h_pct: float | None = None
    change_7d_pct: float | None = None
    as_of: datetime | None = None

    @property
    def display(self) -> str:
        return f"{self.name} ({self.symbol.upper()})"


class MarketSource(BaseModel):
    source: str
    url: str
    as_of: datetime


class MarketData(BaseModel):
    """What one market question (or the report's overview) is answered from."""

    kind: MarketKind
    fetched_at: datetime
    # overview
    total_market_cap_usd: float | None = None
    total_volume_usd: float | None = None
    market_cap_change_24h_pct: float | None = None
    btc_dominance_pct: float | None = None
    eth_dominance_pct: float | None = None
    total_as_of: datetime | None = None
    btc: CoinLine | None = None
    eth: CoinLine | None = None
    fear_greed: int | None = None
    fear_greed_label: str | None = None
    fear_greed_as_of: datetime | None = None
    # trending / movers
    coins: list[CoinLine] = Field(default_factory=list)
    top_n: int | None = None
    sources: list[MarketSource] = Field(default_factory=list)
    missing: dict[str, str] = Field(default_factory=dict)  # part -> why
    stale: bool = False  # the last good copy, served because every source failed
    cache: Literal["hot", "live", "stale", "none"] = "live"

    @property
    def has_data(self) -> bool:
        return bool(
            self.total_market_cap_usd is not None
            or self.btc
            or self.eth
            or self.fear_greed is not None
            or self.coins
        )

    def movers(
        self, window: Literal["24h", "7d"] = "24h", n: int = MOVERS_SHOWN
    ) -> tuple[list[CoinLine], list[CoinLine]]:
        """(gainers, losers) among `coins` over `window`, biggest first."""

        def change(c: CoinLine) -> float | None:
            return c.change_24h_pct if window == "24h" else c.change_7d_pct

        moved = [c for c in self.coins if change(c) is not None]
        up = sorted((c for c in moved if (change(c) or 0) > 0), key=lambda c: -(change(c) or 0))
        down = sorted((c for c in moved if (change(c) or 0) < 0), key=lambda c: change(c) or 0)
        return up[:n], down[:n]


def coin_line(row: dict[str, Any]) -> CoinLine:
    """A `/coins/markets` row as a CoinLine."""
    rank = num(row.get("market_cap_rank"))
    return CoinLine(
        id=str(row["id"]),
        symbol=str(row.get("symbol") or row["id"]),
        name=str(row.get("name") or row["id"]),
        rank=int(rank) if rank is not None else None,
        price_usd=num(row.get("current_price")),
        market_cap_usd=num(row.get("market_cap")),
        change_24h_pct=num(
            row.get(
                "price_change_percentage_24h_in_currency", row.get("price_change_percentage_24h")
            )
        ),
        change_7d_pct=num(row.get("price_change_percentage_7d_in_currency")),
        as_of=iso(row.get("last_updated")),
    )


def trending_line(item: dict[str, Any]) -> CoinLine:
    """A `/search/trending` item; its price and 24 h change when CoinGecko includes them."""
    rank = num(item.get("market_cap_rank"))
    data = item.get("data") if isinstance(item.get("data"), dict) else {}
    change = data.get("price_change_percentage_24h") if isinstance(data, dict) else None
    return CoinLine(
        id=str(item["id"]),
        symbol=str(item.get("symbol") or item["id"]),
        name=str(item.get("name") or item["id"]),
        rank=int(rank) if rank is not None else None,
        price_usd=num(data.get("price")) if isinstance(data, dict) else None,
        change_24h_pct=usd(change) if isinstance(change, dict) else num(change),
    )


async def _fetch_overview(deps: Deps) -> MarketData:
    now = utcnow()
    out = MarketData(kind="overview", fetched_at=now)
    glob, quotes, index = await asyncio.gather(
        coingecko.fetch_global(deps),
        coingecko.fetch_markets(deps, ["bitcoin", "ethereum"]),
        feargreed.fetch(deps),
        return_exceptions=True,
    )
    if isinstance(glob, SourceError):
        out.missing["total_market_cap"] = glob.reason
    elif isinstance(glob, BaseException):
        raise glob
    else:
        out.total_market_cap_usd = usd(glob.get("total_market_cap"))
        out.total_volume_usd = usd(glob.get("total_volume"))
        out.market_cap_change_24h_pct = num(glob.get("market_cap_change_percentage_24h_usd"))
        shares = glob.get("market_cap_percentage")
        if isinstance(shares, dict):
            out.btc_dominance_pct, out.eth_dominance_pct = (
                num(shares.get("btc")),
                num(shares.get("eth")),
            )
        out.total_as_of = from_unix(glob.get("updated_at")) or now
        out.sources.append(
            MarketSource(source=coingecko.SOURCE, url=GLOBAL_URL, as_of=out.total_as_of)
        )
    if isinstance(quotes, SourceError):
        out.missing["quotes"] = quotes.reason
    elif isinstance(quotes, BaseException):
        raise quotes
    else:
        lines = {row["id"]: coin_line(row) for row in quotes}
        out.btc, out.eth = lines.get("bitcoin"), lines.get("ethereum")
        for coin in (out.btc, out.eth):
            if coin is not None:
                out.sources.append(
                    MarketSource(
                        source=coingecko.SOURCE,
                        url=coingecko.page_url(coin.id),
                        as_of=coin.as_of or now,
                    )
                )
        if out.btc is None and out.eth is None:
            out.missing["quotes"] = "no BTC or ETH quote in the answer"
    if isinstance(index, SourceError):
        out.missing["fear_greed"] = index.reason
    elif isinstance(index, BaseException):
        raise index
    else:
        out.fear_greed, out.fear_greed_label = index.value, index.label
        out.fear_greed_as_of = index.as_of or now
        out.sources.append(
            MarketSource(
                source=feargreed.SOURCE, url=feargreed.PAGE_URL, as_of=out.fear_greed_as_of
            )
        )
    return out


async def _fetch_trending(deps: Deps) -> MarketData:
    now = utcnow()
    out = MarketData(kind="trending", fetched_at=now)
    try:
        items = await coingecko.fetch_trending_coins(deps)
    except SourceError as exc:
        out.missing["trending"] = exc.reason
        return out
    out.coins = [trending_line(i) for i in items]
    out.sources.append(MarketSource(source=coingecko.SOURCE, url=TRENDING_URL, as_of=now))
    return out


async def _fetch_movers(deps: Deps) -> MarketData:
    now = utcnow()
    out = MarketData(kind="movers", fetched_at=now, top_n=MOVERS_TOP_N)
    try:
        rows = await coingecko.fetch_top_markets(deps, MOVERS_TOP_N)
    except SourceError as exc:
        out.missing["movers"] = exc.reason
        return out
    out.coins = [coin_line(r) for r in rows]
    newest = max((c.as_of for c in out.coins if c.as_of), default=now)
    out.sources.append(MarketSource(source=coingecko.SOURCE, url=MARKETS_URL, as_of=newest))
    return out


FETCHERS = {"overview": _fetch_overview, "trending": _fetch_trending, "movers": _fetch_movers}


def _key(deps: Deps, kind: MarketKind, *parts: str) -> str:
    return deps.keys("market", kind, *parts)


async def _read(deps: Deps, key: str) -> MarketData | None:
    raw = await best_effort.attempt(
        deps.redis, "market cache read", lambda: deps.redis.get(key), None
    )
    if raw is None:
        return None
    try:
        return MarketData.model_validate_json(raw)
    except ValueError:
        log.warning("dropping unreadable market cache entry %s", key)
        return None


async def _write(deps: Deps, key: str, data: MarketData, ttl_s: int) -> None:
    raw = data.model_dump_json()
    await best_effort.attempt(
        deps.redis, "market cache write", lambda: deps.redis.set(key, raw, ex=max(1, ttl_s)), None
    )


async def market_data(deps: Deps, kind: MarketKind, *, refresh: bool = False) -> MarketData:
    """The market `kind`, from the hot cache or fetched once (single-flight) and cached; the
    last good copy (stale) when every source fails; `cache="none"` when there is nothing."""
    hot_key = _key(deps, kind)
    if not refresh:
        cached = await _read(deps, hot_key)
        if cached is not None:
            return cached.model_copy(update={"cache": "hot"})

    async def produce() -> MarketData:
        fresh = await FETCHERS[kind](deps)
        if fresh.has_data:
            ttl = PARTIAL_TTL_S if fresh.missing else HOT_TTL_S[kind]
            await _write(deps, hot_key, fresh, ttl)
            await _write(deps, _key(deps, kind, "last"), fresh, LAST_GOOD_TTL_S)
            return fresh
        last = await _read(deps, _key(deps, kind, "last"))
        if last is not None:
            return last.model_copy(
                update={
                    "stale": True,
                    "cache": "stale",
                    "missing": {**last.missing, **fresh.missing},
                }
            )
        return fresh.model_copy(update={"cache": "none"})

    async def poll() -> MarketData | None:
        found = await _read(deps, hot_key)
        return found.model_copy(update={"cache": "hot"}) if found is not None else None

    return await single_flight(deps, hot_key + ":fetch", produce, poll)


async def market_overview(deps: Deps, *, refresh: bool = False) -> MarketData:
    """Total market cap and volume, BTC/ETH price and dominance, Fear & Greed (chat and report)."""
    return await market_data(deps, "overview", refresh=refresh)
