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


def _usd(x: float) -> str:
    """$1.23B / $4.5M / $12,345 / $0.000123 — compact money for sentences."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(x) >= size:
            return f"${x / size:.2f}{suffix}"
    if abs(x) >= 1:
        return f"${x:,.2f}"
    return f"${x:.6g}"


def _pct(x: float, signed: bool = True) -> str:
    return f"{x:+.1f}%" if signed else f"{x:.1f}%"


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
    # The source's own timestamp for the data (CoinGecko `last_updated`, Fear & Greed
    # `timestamp`, a feed's newest item); None when the source gives none (then: fetched_at).
    data_as_of: datetime | None = None

    @property
    def as_of(self) -> datetime:
        if self.data_as_of is None:
            return self.fetched_at
        return min(self.data_as_of, self.fetched_at)


# Market-wide background (the daily Fear & Greed reading) does not age a project's section;
# its own age is shown next to it in the sources.
BACKGROUND_SOURCES = frozenset({"alternative.me"})


def section_as_of(evidence: list[Evidence]) -> datetime | None:
    """How old a section's data is: the oldest of its sources that date their own data
    (CoinGecko's `last_updated`, a feed's newest item), else the oldest fetch. Undated
    sources (GoPlus holders, DefiLlama TVL, GitHub) change slowly and are shown with their
    own fetch age in the sources list."""
    own = [e for e in evidence if e.source not in BACKGROUND_SOURCES] or evidence
    dated = [e.as_of for e in own if e.data_as_of is not None]
    if dated:
        return min(dated)
    return min((e.as_of for e in own), default=None)


class ToolResult(BaseModel):
    tool: ToolName
    project_id: str
    # How old the data is: the oldest of its sources' own timestamps (fetch time for sources
    # that give none). `age_seconds` is measured from it whenever the result is served.
    as_of: datetime = Field(default_factory=utcnow)
    stale: bool = False  # served from an older snapshot because live sources failed
    age_seconds: float = 0.0
    evidence: list[Evidence] = Field(default_factory=list)
    missing: dict[str, str] = Field(default_factory=dict)  # field -> why it is unknown
    # Sources this result needed that did not answer (it is partial when any did not).
    sources_failed: list[str] = Field(default_factory=list)

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

    def key_facts(self) -> list[str]:
        facts: list[str] = []
        if self.price_usd is not None:
            moves = [f"{_pct(v)} {label}" for v, label in
                     ((self.change_24h_pct, "24h"), (self.change_7d_pct, "7d")) if v is not None]
            facts.append(f"Price {_usd(self.price_usd)}" + (f" ({', '.join(moves)})" if moves else ""))
        if self.market_cap_usd is not None:
            rank = f", rank #{self.market_cap_rank}" if self.market_cap_rank else ""
            facts.append(f"Market cap {_usd(self.market_cap_usd)}{rank}")
        if self.volume_24h_usd is not None:
            facts.append(f"24h volume {_usd(self.volume_24h_usd)}")
        if self.fdv_usd is not None:
            facts.append(f"Fully diluted valuation {_usd(self.fdv_usd)}")
        if self.ath_change_pct is not None and self.ath_usd is not None:
            facts.append(f"{_pct(self.ath_change_pct)} from its all-time high of {_usd(self.ath_usd)}")
        if self.tvl_usd is not None:
            facts.append(f"TVL {_usd(self.tvl_usd)}")
        if self.holder_count is not None:
            facts.append(f"{self.holder_count:,} holders")
        if self.top10_share is not None:
            facts.append(f"Top 10 wallets hold {self.top10_share:.1%} (excluding burn, locked, LP "
                         "and exchange wallets)")
        if self.volatility_annual is not None:
            facts.append(f"Annualised volatility {self.volatility_annual:.0%}")
        if self.market_score is not None:
            facts.append(f"Market score {self.market_score:.0f}/100")
        return facts

    def risks(self) -> list[str]:
        out: list[str] = []
        if self.top10_share is not None and self.top10_share > 0.5:
            out.append(f"Top 10 wallets control {self.top10_share:.0%} of supply")
        if self.volatility_annual is not None and self.volatility_annual > 1.0:
            out.append(f"Very volatile: {self.volatility_annual:.0%} annualised")
        if self.market_cap_usd and self.volume_24h_usd is not None \
                and self.volume_24h_usd / self.market_cap_usd < 0.002:
            out.append("Thin trading: 24h volume under 0.2% of market cap")
        if self.green_volume_share is not None and self.green_volume_share < 0.3:
            out.append("Most volume trades on venues CoinGecko does not rate as trusted")
        return out


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

    def key_facts(self) -> list[str]:
        facts: list[str] = []
        if self.score is not None:
            facts.append(f"Sentiment {self.score:.0f}/100 ({self.label}), trend {self.trend}")
        else:
            facts.append("Sentiment: insufficient data (fewer than 3 recent news items)")
        facts.append(f"{self.volume_24h} news items in 24h, {self.volume_7d} in 7 days")
        if self.votes_up_pct is not None:
            facts.append(f"{self.votes_up_pct:.0f}% of CoinGecko voters are positive")
        if self.fear_greed is not None:
            facts.append(f"Market-wide Fear & Greed {self.fear_greed} ({self.fear_greed_label})")
        return facts

    def risks(self) -> list[str]:
        out = [f"Negative headline: {h.title}" for h in self.headlines
               if h.compound is not None and h.compound <= -0.5][:2]
        if self.trend == "bearish":
            out.insert(0, "News sentiment is turning bearish")
        return out


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

    def key_facts(self) -> list[str]:
        facts: list[str] = []
        if self.circulating_supply is not None:
            cap = self.max_supply or self.total_supply
            ratio = f" ({self.circulating_ratio:.0%} of {cap:,.0f})" \
                if cap and self.circulating_ratio is not None else ""
            facts.append(f"Circulating supply {self.circulating_supply:,.0f}{ratio}")
        if self.fdv_to_mcap is not None:
            facts.append(f"FDV / market cap {self.fdv_to_mcap:.2f}x")
        if self.inflation_annual_pct is not None:
            facts.append(f"Implied supply inflation {self.inflation_annual_pct:.1f}%/yr")
        if not self.contract_applicable:
            facts.append("Native coin: contract risk checks are not applicable")
        if self.risk_score is not None:
            facts.append(f"Risk score {self.risk_score}/10")
        if self.distribution_health != "unknown":
            facts.append(f"Holder distribution {self.distribution_health}")
        if self.lock_ends:
            facts.append(f"Next token lock ends {self.lock_ends[0]:%Y-%m-%d}")
        return facts

    def risks(self) -> list[str]:
        out = [f"{f.name}" + (f" ({f.detail})" if f.detail else "")
               for f in sorted(self.flags, key=lambda f: -f.points) if f.status == "yes" and f.points]
        if self.fdv_to_mcap is not None and self.fdv_to_mcap >= 3:
            out.append(f"Large dilution overhang: FDV is {self.fdv_to_mcap:.1f}x market cap")
        if self.inflation_annual_pct is not None and self.inflation_annual_pct >= 20:
            out.append(f"High supply inflation: {self.inflation_annual_pct:.0f}%/yr")
        if self.distribution_health == "concentrated":
            out.append("Holdings are concentrated in a few wallets")
        return out


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

    def key_facts(self) -> list[str]:
        facts: list[str] = []
        if self.repos:
            facts.append(f"GitHub activity {self.github_activity}: {self.commits_90d} commits by "
                         f"{self.active_contributors_90d} contributors in 90 days "
                         f"({', '.join(r.full_name for r in self.repos)})")
        elif self.github_activity == "none":
            facts.append("No public code repository linked")
        if self.stars is not None:
            facts.append(f"{self.stars:,} GitHub stars, {self.forks or 0:,} forks")
        if self.last_push is not None:
            facts.append(f"Last code push {self.last_push:%Y-%m-%d}")
        if self.audits_status != "unknown":
            facts.append(f"Audits: {self.audits_status}" +
                         (f" ({len(self.audit_links)} reports)" if self.audit_links else ""))
        if self.backers:
            facts.append("Backers: " + ", ".join(self.backers[:5]))
        if self.partnerships:
            facts.append(f"{len(self.partnerships)} recent partnership/integration headlines")
        if self.credibility_score is not None:
            facts.append(f"Credibility {self.credibility_score:.1f}/10")
        return facts

    def risks(self) -> list[str]:
        out: list[str] = []
        if self.audits_status == "no audits":
            out.append("No audits listed on DefiLlama")
        if self.github_activity in ("low", "none"):
            out.append("Little or no public development activity in 90 days")
        if self.repos and all(r.archived for r in self.repos):
            out.append("Code repositories are archived")
        return out


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
