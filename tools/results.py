"""Typed results of project resolution and of the four analysis tools.

This module is the contract between `tools` (which fills these) and `agent`, `web`, `reports`
(which read them). Missing data is `None` plus an entry in `missing` saying why — never 0.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

ToolName = Literal["onchain", "sentiment", "tokenomics", "team"]
TOOL_NAMES: tuple[ToolName, ...] = ("onchain", "sentiment", "tokenomics", "team")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Project(BaseModel):
    """One exact coin/project, identified by its CoinGecko id."""

    model_config = ConfigDict(frozen=True)

    id: str  # CoinGecko id, e.g. "uniswap"
    symbol: str  # upper case, e.g. "UNI"
    name: str  # e.g. "Uniswap"
    market_cap_rank: int | None = None
    # CoinGecko platform key -> contract address ("ethereum" -> "0x1f98…"); empty for native coins
    platforms: dict[str, str] = Field(default_factory=dict)
    github_repos: list[str] = Field(default_factory=list)  # "owner/repo" or "org"
    defillama_slug: str | None = None

    @property
    def display(self) -> str:
        """How answers name the coin they chose: 'Uniswap (UNI)'."""
        return f"{self.name} ({self.symbol.upper()})"


class Resolution(BaseModel):
    """What the user's words resolved to: one project, or ranked suggestions — never a guess."""

    query: str
    project: Project | None = None
    suggestions: list[Project] = Field(default_factory=list)
    matched: str | None = None  # the text span that named the project, e.g. "$ENA"
    method: Literal["index", "alias", "symbol", "contract", "fuzzy", "search", "context", "none"] = "none"


class Evidence(BaseModel):
    source: str  # "CoinGecko", "DefiLlama", "GoPlus", "GitHub", "CoinDesk RSS", "alternative.me"
    url: str
    fetched_at: datetime


class ToolResult(BaseModel):
    tool: ToolName
    project_id: str
    as_of: datetime = Field(default_factory=utcnow)  # when the newest source data was fetched
    stale: bool = False  # served from an older snapshot because live sources failed
    age_seconds: float = 0.0
    evidence: list[Evidence] = Field(default_factory=list)
    missing: dict[str, str] = Field(default_factory=dict)  # field -> why it is unknown

    def key_facts(self) -> list[str]:
        """Short sentences carrying this result's figures, for writers and reports."""
        raise NotImplementedError

    def risks(self) -> list[str]:
        """Plain-language risks found by this tool (may be empty)."""
        return []


class OnchainResult(ToolResult):
    tool: Literal["onchain"] = "onchain"
    price_usd: float | None = None
    market_cap_usd: float | None = None
    market_cap_rank: int | None = None
    volume_24h_usd: float | None = None
    change_24h_pct: float | None = None
    change_7d_pct: float | None = None
    ath_usd: float | None = None
    ath_change_pct: float | None = None
    fdv_usd: float | None = None
    tvl_usd: float | None = None
    mcap_to_tvl: float | None = None
    holder_count: int | None = None
    top10_share: float | None = None  # 0..1, after excluding burn/locked/LP/exchange wallets
    green_volume_share: float | None = None  # 0..1 of ticker volume on trust_score green venues
    volatility_annual: float | None = None  # annualised stdev of daily log returns
    price_history: list[tuple[int, float]] = Field(default_factory=list)  # (ms, usd), for charts
    market_score: float | None = None  # 0..100


class Headline(BaseModel):
    title: str
    url: str
    source: str
    published_at: datetime | None = None
    compound: float | None = None  # VADER compound, -1..1


class SentimentResult(ToolResult):
    tool: Literal["sentiment"] = "sentiment"
    score: float | None = None  # 0..100; None when data is insufficient
    label: str | None = None  # "Extreme Fear" … "Extreme Greed" band of `score`
    trend: Literal["bullish", "bearish", "neutral", "insufficient data"] = "insufficient data"
    volume_24h: int = 0  # matched news items in the last 24 h
    volume_7d: int = 0
    headlines: list[Headline] = Field(default_factory=list)
    votes_up_pct: float | None = None
    fear_greed: int | None = None  # market-wide background, 0..100
    fear_greed_label: str | None = None


class RiskFlag(BaseModel):
    name: str  # "honeypot", "mintable", "owner can change balances", …
    status: Literal["yes", "no", "unknown", "not applicable"]
    points: int = 0  # risk points added (after mitigations)
    detail: str | None = None


class TokenomicsResult(ToolResult):
    tool: Literal["tokenomics"] = "tokenomics"
    circulating_supply: float | None = None
    total_supply: float | None = None
    max_supply: float | None = None
    circulating_ratio: float | None = None  # 0..1
    fdv_to_mcap: float | None = None  # overhang
    inflation_annual_pct: float | None = None
    contract_applicable: bool = True  # False for native coins (bitcoin, ether)
    flags: list[RiskFlag] = Field(default_factory=list)
    top10_share: float | None = None
    lock_ends: list[datetime] = Field(default_factory=list)
    distribution_health: Literal["healthy", "moderate", "concentrated", "unknown"] = "unknown"
    risk_score: int | None = None  # 1 (low risk) .. 10 (high risk), seed scale
    tokenomics_score: float | None = None  # 0..100


class RepoStats(BaseModel):
    full_name: str  # "owner/repo"
    url: str
    stars: int | None = None
    forks: int | None = None
    commits_90d: int | None = None
    active_contributors_90d: int | None = None
    pushed_at: datetime | None = None
    archived: bool | None = None


class TeamResult(ToolResult):
    tool: Literal["team"] = "team"
    repos: list[RepoStats] = Field(default_factory=list)
    commits_90d: int | None = None
    active_contributors_90d: int | None = None
    stars: int | None = None
    forks: int | None = None
    last_push: datetime | None = None
    github_activity: Literal["high", "medium", "low", "none", "unknown"] = "unknown"
    audits_status: Literal["audited", "partly audited", "audited fork", "no audits", "unknown"] = "unknown"
    audit_links: list[str] = Field(default_factory=list)
    backers: list[str] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)  # homepage, twitter, github, whitepaper…
    partnerships: list[Headline] = Field(default_factory=list)
    credibility_score: float | None = None  # 0..10, seed scale
    team_score: float | None = None  # 0..100


AnyToolResult = Annotated[
    OnchainResult | SentimentResult | TokenomicsResult | TeamResult,
    Field(discriminator="tool"),
]
RESULT_TYPES: dict[ToolName, type[ToolResult]] = {
    "onchain": OnchainResult,
    "sentiment": SentimentResult,
    "tokenomics": TokenomicsResult,
    "team": TeamResult,
}
