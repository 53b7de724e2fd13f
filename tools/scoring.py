"""Pure scoring formulas of the four tools; docs/scoring.md explains each one and its source."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.results import DistributionHealth, GithubActivity, Trend


def clip(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return max(lo, min(hi, x))


def ramp(x: float, zero_at: float, one_at: float) -> float:
    """Linear 0..1 between two points (works in either direction), clipped."""
    return clip((x - zero_at) / (one_at - zero_at))


def weighted(parts: Iterable[tuple[float | None, float]]) -> float | None:
    """Weighted mean over the parts that are known; None when none is."""
    known = [(v, w) for v, w in parts if v is not None]
    total = sum(w for _, w in known)
    return sum(v * w for v, w in known) / total if total else None


# --- market (DATA_SOURCES §1) -------------------------------------------------------------------

MARKET_WEIGHTS = {
    "size": 20,
    "liquidity": 25,
    "momentum": 15,
    "volatility": 15,
    "fundamentals": 10,
    "distribution": 15,
}


def size_component(market_cap: float | None) -> float | None:
    if not market_cap or market_cap <= 0:
        return None
    return clip((math.log10(market_cap) - 6) / (11 - 6))


def turnover_component(volume: float | None, market_cap: float | None) -> float | None:
    """1 for daily turnover 2–50 %, down to 0 at 0.2 %; above 200 % suspect wash trading."""
    if volume is None or not market_cap:
        return None
    v = volume / market_cap
    if v < 0.02:
        return ramp(v, 0.002, 0.02)
    if v <= 2.0:
        return 1.0
    return max(0.3, 1 - (v - 2) / 8)


def liquidity_component(
    volume: float | None, market_cap: float | None, green_share: float | None
) -> float | None:
    return weighted([(turnover_component(volume, market_cap), 0.7), (green_share, 0.3)])


def momentum_component(change_24h: float | None, change_7d: float | None) -> float | None:
    parts = [(0.5 + 0.5 * math.tanh(x / 20), 1.0) for x in (change_24h, change_7d) if x is not None]
    return weighted(parts)


def volatility_component(vol_annual: float | None) -> float | None:
    return None if vol_annual is None else 1 - clip(vol_annual / 1.5)


def fundamentals_component(mcap_to_tvl: float | None) -> float | None:
    if mcap_to_tvl is None or mcap_to_tvl <= 0:
        return None
    r = mcap_to_tvl
    if r <= 1:
        return 1.0
    if r <= 5:
        return 1 - 0.5 * (r - 1) / 4
    return max(0.0, 0.5 - 0.5 * (r - 5) / 5)


def distribution_component(top10_share: float | None) -> float | None:
    return None if top10_share is None else 1 - clip((top10_share - 0.2) / 0.6)


def market_score(components: dict[str, float | None]) -> float | None:
    """0–100 over the known components, weights renormalised."""
    value = weighted((components.get(k), w) for k, w in MARKET_WEIGHTS.items())
    return None if value is None else round(100 * value, 1)


# --- sentiment (DATA_SOURCES §2) ---------------------------------------------------------------

SENTIMENT_WEIGHTS = {"news": 0.55, "votes": 0.25, "fear_greed": 0.20}
MIN_NEWS_ITEMS = 3


def news_score(scored: Iterable[tuple[float, float]]) -> float | None:
    """50·(1 + Σ w·c / Σ w) over (compound, age_hours) with w = exp(−age/24), ages ≤ 7 days."""
    pairs = [(c, math.exp(-max(age, 0.0) / 24)) for c, age in scored if age <= 24 * 7]
    total = sum(w for _, w in pairs)
    return 50 * (1 + sum(c * w for c, w in pairs) / total) if total else None


def sentiment_score(
    news: float | None, votes_up_pct: float | None, fear_greed: int | None
) -> float | None:
    value = weighted(
        [
            (news, SENTIMENT_WEIGHTS["news"]),
            (votes_up_pct, SENTIMENT_WEIGHTS["votes"]),
            (None if fear_greed is None else float(fear_greed), SENTIMENT_WEIGHTS["fear_greed"]),
        ]
    )
    return None if value is None else round(value, 1)


def trend(score: float | None, recent: float | None, earlier: float | None) -> Trend:
    """bullish/bearish when the last 24 h moved ≥ 5 points vs the 72 h before and agree with
    score."""
    if score is None:
        return "insufficient data"
    if recent is None or earlier is None:
        return "neutral"
    delta = recent - earlier
    if delta >= 5 and score >= 55:
        return "bullish"
    if delta <= -5 and score <= 45:
        return "bearish"
    return "neutral"


def band(score: float | None) -> str | None:
    """alternative.me's Fear & Greed bands, applied to any 0–100 mood score."""
    if score is None:
        return None
    if score < 25:
        return "Extreme Fear"
    if score < 47:
        return "Fear"
    if score < 55:
        return "Neutral"
    if score < 76:
        return "Greed"
    return "Extreme Greed"


# --- tokenomics (DATA_SOURCES §3) --------------------------------------------------------------


def supply_health(
    circulating_ratio: float | None, overhang: float | None, inflation_pct: float | None
) -> float | None:
    """0..1: circulating ratio, FDV/mcap overhang and annual inflation, each ramped."""
    return weighted(
        [
            (None if circulating_ratio is None else ramp(circulating_ratio, 0.2, 0.8), 1.0),
            (None if overhang is None else ramp(overhang, 5.0, 1.2), 1.0),
            (None if inflation_pct is None else ramp(inflation_pct, 50.0, 2.0), 1.0),
        ]
    )


def risk_score_1_10(risk_points: int) -> int:
    """Map 0–100 risk points onto the seed's 1 (low) … 10 (high) scale."""
    return 1 + round(clip(risk_points / 100) * 9)


def tokenomics_score(risk_points: int | None, health: float | None) -> float | None:
    value = weighted(
        [
            (None if risk_points is None else 100 - risk_points, 0.7),
            (None if health is None else 100 * health, 0.3),
        ]
    )
    return None if value is None else round(value, 1)


def distribution_health(top10_share: float | None) -> DistributionHealth:
    if top10_share is None:
        return "unknown"
    if top10_share < 0.3:
        return "healthy"
    if top10_share < 0.6:
        return "moderate"
    return "concentrated"


# --- team (DATA_SOURCES §4) --------------------------------------------------------------------

TEAM_WEIGHTS = {"activity": 40, "recency": 15, "adoption": 10, "audits": 20, "transparency": 15}
AUDIT_VALUES = {"audited": 1.0, "audited fork": 0.6, "partly audited": 0.5, "no audits": 0.0}
TRANSPARENCY_ITEMS = ("homepage", "github", "twitter", "whitepaper", "backers")


def activity_component(commits_90d: int | None, contributors_90d: int | None) -> float | None:
    return weighted(
        [
            (
                None
                if commits_90d is None
                else clip(math.log10(1 + commits_90d) / math.log10(301)),
                1.0,
            ),
            (None if contributors_90d is None else clip(contributors_90d / 15), 1.0),
        ]
    )


def recency_component(days_since_push: float | None, all_archived: bool) -> float | None:
    if all_archived:
        return 0.0
    return None if days_since_push is None else ramp(days_since_push, 180, 14)


def adoption_component(stars: int | None, forks: int | None) -> float | None:
    return weighted(
        [
            (None if stars is None else clip(math.log10(1 + stars) / 5), 1.0),
            (None if forks is None else clip(math.log10(1 + forks) / 4), 1.0),
        ]
    )


def audits_component(status: str, n_links: int) -> float | None:
    if status == "unknown":
        return None
    base = AUDIT_VALUES.get(status, 0.0)
    return clip(base + 0.1 * max(0, n_links - 1)) if base > 0 else base


def team_score(components: dict[str, float | None]) -> float | None:
    value = weighted((components.get(k), w) for k, w in TEAM_WEIGHTS.items())
    return None if value is None else round(100 * value, 1)


def github_activity(commits_90d: int | None, contributors_90d: int | None) -> GithubActivity:
    if commits_90d is None and contributors_90d is None:
        return "unknown"
    c, n = commits_90d or 0, contributors_90d or 0
    if c >= 100 or n >= 10:
        return "high"
    if c >= 20 or n >= 3:
        return "medium"
    return "low"
