"""CoinGecko v3: one coin's page, its market chart and the trending list — fetch and parse."""

from __future__ import annotations

import itertools
import math
import statistics
from datetime import datetime
from typing import Any

from chainlens.deps import Deps
from tools.http import BadResponse, NotFound, get_json
from tools.sources._util import dig, iso, num, usd

SOURCE = "CoinGecko"
_COIN_PARAMS = {
    "localization": "false",
    "tickers": "true",
    "market_data": "true",
    "community_data": "true",
    "developer_data": "true",
    "sparkline": "false",
}


def _base(deps: Deps) -> str:
    return str(deps.settings.coingecko_base_url).rstrip("/")


def _headers(deps: Deps) -> dict[str, str] | None:
    key = deps.settings.coingecko_api_key
    return {"x-cg-demo-api-key": key.get_secret_value()} if key else None


def page_url(coin_id: str) -> str:
    """The public page a user can open to check the figures."""
    return f"https://www.coingecko.com/en/coins/{coin_id}"


async def fetch_coin(deps: Deps, coin_id: str) -> dict[str, Any]:
    """`/coins/{id}` with market, community and developer data and tickers."""
    url = f"{_base(deps)}/coins/{coin_id}"
    body = await get_json(
        deps, url, source=SOURCE, params=_COIN_PARAMS, headers=_headers(deps), memo_ttl=60
    )
    if isinstance(body, dict) and body.get("error"):
        raise NotFound(SOURCE, url, str(body["error"])[:200])
    if not isinstance(body, dict) or not isinstance(body.get("market_data"), dict):
        raise BadResponse(SOURCE, url, "coin body has no market_data")
    return body


async def fetch_market_chart(deps: Deps, coin_id: str, days: int = 365) -> dict[str, Any]:
    """Daily `prices` / `market_caps` / `total_volumes` for the last `days`."""
    url = f"{_base(deps)}/coins/{coin_id}/market_chart"
    params = {"vs_currency": "usd", "days": str(days), "interval": "daily"}
    body = await get_json(
        deps, url, source=SOURCE, params=params, headers=_headers(deps), memo_ttl=300
    )
    if not isinstance(body, dict) or not isinstance(body.get("prices"), list):
        raise BadResponse(SOURCE, url, "market chart has no prices list")
    return body


MARKETS_IDS_PER_CALL = 250  # /coins/markets serves up to 250 coins a page


async def fetch_markets(deps: Deps, coin_ids: list[str]) -> list[dict[str, Any]]:
    """`/coins/markets` rows for many coins: one call per 250 ids, not one per coin."""
    rows: list[dict[str, Any]] = []
    url = f"{_base(deps)}/coins/markets"
    for start in range(0, len(coin_ids), MARKETS_IDS_PER_CALL):
        chunk = coin_ids[start : start + MARKETS_IDS_PER_CALL]
        params = {
            "vs_currency": "usd",
            "ids": ",".join(chunk),
            "per_page": str(len(chunk)),
            "page": "1",
            "price_change_percentage": "24h,7d",
        }
        body = await get_json(
            deps, url, source=SOURCE, params=params, headers=_headers(deps), background=True
        )
        if not isinstance(body, list):
            raise BadResponse(SOURCE, url, "markets body is not a list")
        rows += [row for row in body if isinstance(row, dict) and isinstance(row.get("id"), str)]
    return rows


def market_row_facts(row: dict[str, Any]) -> dict[str, Any]:
    """The market fields of one `/coins/markets` row, named as in `OnchainResult`."""
    return {
        "price_usd": num(row.get("current_price")),
        "market_cap_usd": num(row.get("market_cap")),
        "market_cap_rank": int(rank) if (rank := num(row.get("market_cap_rank"))) else None,
        "volume_24h_usd": num(row.get("total_volume")),
        "change_24h_pct": num(
            row.get(
                "price_change_percentage_24h_in_currency", row.get("price_change_percentage_24h")
            )
        ),
        "change_7d_pct": num(row.get("price_change_percentage_7d_in_currency")),
        "fdv_usd": num(row.get("fully_diluted_valuation")),
        "ath_usd": num(row.get("ath")),
        "ath_change_pct": num(row.get("ath_change_percentage")),
    }


async def fetch_trending(deps: Deps) -> list[str]:
    """CoinGecko ids currently trending in search."""
    url = f"{_base(deps)}/search/trending"
    body = await get_json(deps, url, source=SOURCE, headers=_headers(deps), memo_ttl=300)
    coins = body.get("coins") if isinstance(body, dict) else None
    if not isinstance(coins, list):
        raise BadResponse(SOURCE, url, "trending body has no coins list")
    ids = [dig(c, "item", "id") for c in coins]
    return [i for i in ids if isinstance(i, str) and i]


async def fetch_global(deps: Deps) -> dict[str, Any]:
    """`/global`: `data.total_market_cap.usd`, `data.total_volume.usd`,
    `data.market_cap_percentage.{btc,eth}`, `data.updated_at` (unix seconds)."""
    url = f"{_base(deps)}/global"
    body = await get_json(deps, url, source=SOURCE, headers=_headers(deps), memo_ttl=120)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or usd(data.get("total_market_cap")) is None:
        raise BadResponse(SOURCE, url, "no data.total_market_cap.usd")
    return data


async def fetch_top_markets(deps: Deps, n: int) -> list[dict[str, Any]]:
    """`/coins/markets` rows of the top `n` coins by market cap, with 24 h and 7 d change."""
    url = f"{_base(deps)}/coins/markets"
    params = {
        "vs_currency": "usd",
        "order": "market_cap_desc",
        "per_page": str(n),
        "page": "1",
        "price_change_percentage": "24h,7d",
    }
    body = await get_json(
        deps, url, source=SOURCE, params=params, headers=_headers(deps), memo_ttl=120
    )
    if not isinstance(body, list):
        raise BadResponse(SOURCE, url, "markets body is not a list")
    return [row for row in body if isinstance(row, dict) and isinstance(row.get("id"), str)]


async def fetch_trending_coins(deps: Deps) -> list[dict[str, Any]]:
    """The `item` objects of `/search/trending` coins (id, name, symbol, market_cap_rank...)."""
    url = f"{_base(deps)}/search/trending"
    body = await get_json(deps, url, source=SOURCE, headers=_headers(deps), memo_ttl=300)
    coins = body.get("coins") if isinstance(body, dict) else None
    if not isinstance(coins, list):
        raise BadResponse(SOURCE, url, "trending body has no coins list")
    items = [dig(c, "item") for c in coins]
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("id"), str) and i["id"]]


# --- parsers ----------------------------------------------------------------------------------


def last_updated(coin: dict[str, Any]) -> datetime | None:
    """When CoinGecko last updated this coin's data (`last_updated`, else market data's)."""
    return iso(coin.get("last_updated")) or iso(dig(coin, "market_data", "last_updated"))


def market_facts(coin: dict[str, Any]) -> dict[str, Any]:
    """Price, size, volume, changes, ATH, FDV and TVL from `market_data` (None when absent)."""
    md = coin.get("market_data") or {}
    tvl_raw = md.get("total_value_locked")
    # older bodies carry TVL as {"btc":…, "usd":…}, newer ones as a bare number or null
    tvl = usd(tvl_raw) if isinstance(tvl_raw, dict) else num(tvl_raw)
    rank = num(md.get("market_cap_rank")) or num(coin.get("market_cap_rank"))
    return {
        "price_usd": usd(md.get("current_price")),
        "market_cap_usd": usd(md.get("market_cap")) or None,  # CoinGecko sends 0 for unknown
        "market_cap_rank": int(rank) if rank else None,
        "volume_24h_usd": usd(md.get("total_volume")),
        "change_24h_pct": num(md.get("price_change_percentage_24h")),
        "change_7d_pct": num(md.get("price_change_percentage_7d")),
        "ath_usd": usd(md.get("ath")),
        "ath_change_pct": usd(md.get("ath_change_percentage")),
        "fdv_usd": usd(md.get("fully_diluted_valuation")) or None,
        "tvl_usd": tvl or None,
        "mcap_to_tvl": num(md.get("mcap_to_tvl_ratio")),
    }


def supply_facts(coin: dict[str, Any]) -> dict[str, float | None]:
    md = coin.get("market_data") or {}
    return {
        "circulating_supply": num(md.get("circulating_supply")) or None,
        "total_supply": num(md.get("total_supply")) or None,
        "max_supply": num(md.get("max_supply")) or None,
    }


def green_volume_share(coin: dict[str, Any]) -> float | None:
    """Share of ticker USD volume on venues CoinGecko rates green (anomalous/stale excluded)."""
    tickers = coin.get("tickers")
    if not isinstance(tickers, list):
        return None
    total = green = 0.0
    for t in tickers:
        if not isinstance(t, dict) or t.get("is_anomaly") or t.get("is_stale"):
            continue
        vol = usd(t.get("converted_volume"))
        if vol is None or vol <= 0:
            continue
        total += vol
        if t.get("trust_score") == "green":
            green += vol
    return green / total if total > 0 else None


def platforms(coin: dict[str, Any]) -> dict[str, str]:
    """Contract address per platform; native coins come back as {"": ""} and give {}."""
    raw = coin.get("platforms")
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and k and isinstance(v, str) and v}


def links(coin: dict[str, Any]) -> dict[str, str]:
    """Homepage, Twitter, GitHub, whitepaper, Reddit, Telegram, explorer — those that exist."""
    raw = coin.get("links") or {}
    out: dict[str, str] = {}

    def first(value: Any) -> str | None:
        if isinstance(value, list):
            return next((v for v in value if isinstance(v, str) and v.strip()), None)
        return value if isinstance(value, str) and value.strip() else None

    if homepage := first(raw.get("homepage")):
        out["homepage"] = homepage
    if twitter := first(raw.get("twitter_screen_name")):
        out["twitter"] = f"https://twitter.com/{twitter}"
    if github := first(dig(raw, "repos_url", "github")):
        out["github"] = github
    if whitepaper := first(raw.get("whitepaper")):
        out["whitepaper"] = whitepaper
    if (reddit := first(raw.get("subreddit_url"))) and reddit.rstrip(
        "/"
    ) != "https://www.reddit.com":
        out["reddit"] = reddit
    if telegram := first(raw.get("telegram_channel_identifier")):
        out["telegram"] = f"https://t.me/{telegram}"
    if explorer := first(raw.get("blockchain_site")):
        out["explorer"] = explorer
    return out


def github_repos(coin: dict[str, Any]) -> list[str]:
    repos = dig(coin, "links", "repos_url", "github")
    return [r for r in repos if isinstance(r, str) and r.strip()] if isinstance(repos, list) else []


def votes_up_pct(coin: dict[str, Any]) -> float | None:
    return num(coin.get("sentiment_votes_up_percentage"))


def _pairs(chart: dict[str, Any], key: str) -> list[tuple[int, float]]:
    out: list[tuple[int, float]] = []
    for point in chart.get(key) or []:
        if isinstance(point, list | tuple) and len(point) == 2:
            ms, value = num(point[0]), num(point[1])
            if ms is not None and value is not None:
                out.append((int(ms), value))
    return out


def price_history(chart: dict[str, Any], max_points: int = 200) -> list[tuple[int, float]]:
    """Chart points downsampled by even stride to at most `max_points`, keeping the last one."""
    points = _pairs(chart, "prices")
    if len(points) <= max_points:
        return points
    step = (len(points) - 1) / (max_points - 1)
    return [points[round(i * step)] for i in range(max_points)]


def volatility_annual(chart: dict[str, Any]) -> float | None:
    """Annualised stdev of daily log returns; None with fewer than 10 returns."""
    prices = [p for _, p in _pairs(chart, "prices") if p > 0]
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    if len(returns) < 10:
        return None
    return statistics.stdev(returns) * math.sqrt(365)


def implied_inflation(chart: dict[str, Any]) -> float | None:
    """Annual growth of market_cap/price supply, median of first/last 7 points; None if < 30 d."""
    prices = dict(_pairs(chart, "prices"))
    supply = [
        (ms, cap / prices[ms])
        for ms, cap in _pairs(chart, "market_caps")
        if prices.get(ms) and cap > 0
    ]
    if len(supply) < 14:
        return None
    days = (supply[-1][0] - supply[0][0]) / 86_400_000
    if days < 30:
        return None
    start = statistics.median(s for _, s in supply[:7])
    end = statistics.median(s for _, s in supply[-7:])
    # both medians sit ~3 points in from each end, so span the middle of each window
    span = (supply[-4][0] - supply[3][0]) / 86_400_000 or days
    return float((end / start) ** (365 / span) - 1)
