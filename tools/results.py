"""Typed results of project resolution and of the four analysis tools.

This module is the contract between `tools` (which fills these) and `agent`, `web`, `reports`
(which read them). Missing data is `None` plus an entry in `missing` saying why — never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from chainlens.i18n import ENGLISH, N_, Localizer

ToolName = Literal["onchain", "sentiment", "tokenomics", "team"]
# Labels the scorers (tools/scoring.py, tools/flags.py, DefiLlama's audit legend) produce.
Trend = Literal["bullish", "bearish", "neutral", "insufficient data"]
FlagStatus = Literal["yes", "no", "unknown", "not applicable"]
DistributionHealth = Literal["healthy", "moderate", "concentrated", "unknown"]
GithubActivity = Literal["high", "medium", "low", "none", "unknown"]
AuditStatus = Literal["audited", "partly audited", "audited fork", "no audits", "unknown"]
TOOL_NAMES: tuple[ToolName, ...] = ("onchain", "sentiment", "tokenomics", "team")


def utcnow() -> datetime:
    return datetime.now(UTC)


# Words inside fact sentences that come from fixed vocabularies (translated when shown).
VOCABULARY = (
    N_("bullish"),
    N_("bearish"),
    N_("neutral"),
    N_("insufficient data"),
    N_("Extreme Fear"),
    N_("Fear"),
    N_("Neutral"),
    N_("Greed"),
    N_("Extreme Greed"),
    N_("healthy"),
    N_("moderate"),
    N_("concentrated"),
    N_("high"),
    N_("medium"),
    N_("low"),
    N_("none"),
    N_("audited"),
    N_("partly audited"),
    N_("audited fork"),
    N_("no audits"),
    # contract risk flags (tools/flags.py) and their fixed details
    N_("honeypot (cannot sell)"),
    N_("source code not verified"),
    N_("mintable"),
    N_("owner can change balances"),
    N_("hidden owner"),
    N_("can reclaim ownership"),
    N_("transfers pausable"),
    N_("self-destruct"),
    N_("upgradeable proxy"),
    N_("blacklist function"),
    N_("tax can be changed"),
    N_("buy tax"),
    N_("sell tax"),
    N_("team wallet share"),
    N_("single whale"),
    N_("top-10 concentration"),
    N_("few holders"),
    N_("ownership renounced"),
    N_("halved: on GoPlus trust list or listed on a major exchange"),
    N_("native coin: no token contract"),
)


def _usd(x: float, loc: Localizer = ENGLISH) -> str:
    """$1.23B / $4.5M / $12,345 / $0.000123 — compact money for sentences (1,23 tỷ USD in vi)."""
    return loc.usd(x)


def _pct(x: float, signed: bool = True, loc: Localizer = ENGLISH) -> str:
    return loc.pct(x, signed)


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
    method: Literal[
        "index", "alias", "symbol", "contract", "fuzzy", "search", "context", "none"
    ] = "none"


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

    def key_facts(self, loc: Localizer = ENGLISH) -> list[str]:
        """Short sentences carrying this result's figures, for writers and reports, in the
        localizer's language (English by default)."""
        raise NotImplementedError

    def risks(self, loc: Localizer = ENGLISH) -> list[str]:
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

    def key_facts(self, loc: Localizer = ENGLISH) -> list[str]:
        _ = loc._
        facts: list[str] = []
        if self.price_usd is not None:
            moves = [
                f"{loc.pct(v)} {label}"
                for v, label in ((self.change_24h_pct, _("24h")), (self.change_7d_pct, _("7d")))
                if v is not None
            ]
            facts.append(
                _("Price {price}").format(price=loc.usd(self.price_usd))
                + (f" ({', '.join(moves)})" if moves else "")
            )
        if self.market_cap_usd is not None:
            rank = (
                _(", rank #{rank}").format(rank=self.market_cap_rank)
                if self.market_cap_rank
                else ""
            )
            facts.append(_("Market cap {value}").format(value=loc.usd(self.market_cap_usd)) + rank)
        if self.volume_24h_usd is not None:
            facts.append(_("24h volume {value}").format(value=loc.usd(self.volume_24h_usd)))
        if self.fdv_usd is not None:
            facts.append(_("Fully diluted valuation {value}").format(value=loc.usd(self.fdv_usd)))
        if self.ath_change_pct is not None and self.ath_usd is not None:
            facts.append(
                _("{change} from its all-time high of {ath}").format(
                    change=loc.pct(self.ath_change_pct), ath=loc.usd(self.ath_usd)
                )
            )
        if self.tvl_usd is not None:
            facts.append(_("TVL {value}").format(value=loc.usd(self.tvl_usd)))
        if self.holder_count is not None:
            facts.append(_("{count} holders").format(count=loc.number(self.holder_count)))
        if self.top10_share is not None:
            facts.append(
                _(
                    "Top 10 wallets hold {share} (excluding burn, locked, LP and exchange wallets)"
                ).format(share=loc.share(self.top10_share, 1))
            )
        if self.volatility_annual is not None:
            facts.append(
                _("Annualised volatility {share}").format(share=loc.share(self.volatility_annual))
            )
        if self.market_score is not None:
            facts.append(_("Market score {score}/100").format(score=f"{self.market_score:.0f}"))
        return facts

    def risks(self, loc: Localizer = ENGLISH) -> list[str]:
        _ = loc._
        out: list[str] = []
        if self.top10_share is not None and self.top10_share > 0.5:
            out.append(
                _("Top 10 wallets control {share} of supply").format(
                    share=loc.share(self.top10_share)
                )
            )
        if self.volatility_annual is not None and self.volatility_annual > 1.0:
            out.append(
                _("Very volatile: {share} annualised").format(
                    share=loc.share(self.volatility_annual)
                )
            )
        if (
            self.market_cap_usd
            and self.volume_24h_usd is not None
            and self.volume_24h_usd / self.market_cap_usd < 0.002
        ):
            out.append(
                _("Thin trading: 24h volume under {share} of market cap").format(
                    share=loc.share(0.002, 1)
                )
            )
        if self.green_volume_share is not None and self.green_volume_share < 0.3:
            out.append(_("Most volume trades on venues CoinGecko does not rate as trusted"))
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
    trend: Trend = "insufficient data"
    volume_24h: int = 0  # matched news items in the last 24 h
    volume_7d: int = 0
    headlines: list[Headline] = Field(default_factory=list)
    votes_up_pct: float | None = None
    fear_greed: int | None = None  # market-wide background, 0..100
    fear_greed_label: str | None = None

    def key_facts(self, loc: Localizer = ENGLISH) -> list[str]:
        _ = loc._
        facts: list[str] = []
        if self.score is not None:
            facts.append(
                _("Sentiment {score}/100 ({label}), trend {trend}").format(
                    score=f"{self.score:.0f}", label=_(self.label or "unknown"), trend=_(self.trend)
                )
            )
        else:
            facts.append(_("Sentiment: insufficient data (fewer than 3 recent news items)"))
        facts.append(
            _("{day} news items in 24h, {week} in 7 days").format(
                day=self.volume_24h, week=self.volume_7d
            )
        )
        if self.votes_up_pct is not None:
            facts.append(
                _("{share}% of CoinGecko voters are positive").format(
                    share=loc.number(self.votes_up_pct)
                )
            )
        if self.fear_greed is not None:
            facts.append(
                _("Market-wide Fear & Greed {value} ({label})").format(
                    value=self.fear_greed, label=_(self.fear_greed_label or "unknown")
                )
            )
        return facts

    def risks(self, loc: Localizer = ENGLISH) -> list[str]:
        _ = loc._
        out = [
            _("Negative headline: {title}").format(title=h.title)
            for h in self.headlines
            if h.compound is not None and h.compound <= -0.5
        ][:2]
        if self.trend == "bearish":
            out.insert(0, _("News sentiment is turning bearish"))
        return out


class RiskFlag(BaseModel):
    name: str  # "honeypot", "mintable", "owner can change balances", …
    status: FlagStatus
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
    distribution_health: DistributionHealth = "unknown"
    risk_score: int | None = None  # 1 (low risk) .. 10 (high risk), seed scale
    tokenomics_score: float | None = None  # 0..100

    def key_facts(self, loc: Localizer = ENGLISH) -> list[str]:
        _ = loc._
        facts: list[str] = []
        if self.circulating_supply is not None:
            cap = self.max_supply or self.total_supply
            ratio = (
                _(" ({share} of {cap})").format(
                    share=loc.share(self.circulating_ratio), cap=loc.number(cap)
                )
                if cap and self.circulating_ratio is not None
                else ""
            )
            facts.append(
                _("Circulating supply {supply}").format(supply=loc.number(self.circulating_supply))
                + ratio
            )
        if self.fdv_to_mcap is not None:
            facts.append(
                _("FDV / market cap {ratio}x").format(ratio=loc.number(self.fdv_to_mcap, 2))
            )
        if self.inflation_annual_pct is not None:
            facts.append(
                _("Implied supply inflation {pct}/yr").format(
                    pct=loc.pct(self.inflation_annual_pct, signed=False)
                )
            )
        if not self.contract_applicable:
            facts.append(_("Native coin: contract risk checks are not applicable"))
        if self.risk_score is not None:
            facts.append(_("Risk score {score}/10").format(score=self.risk_score))
        if self.distribution_health != "unknown":
            facts.append(
                _("Holder distribution {health}").format(health=_(self.distribution_health))
            )
        if self.lock_ends:
            facts.append(_("Next token lock ends {date}").format(date=loc.date(self.lock_ends[0])))
        return facts

    def risks(self, loc: Localizer = ENGLISH) -> list[str]:
        _ = loc._
        out = [
            _(f.name) + (f" ({_(f.detail)})" if f.detail else "")
            for f in sorted(self.flags, key=lambda f: -f.points)
            if f.status == "yes" and f.points
        ]
        if self.fdv_to_mcap is not None and self.fdv_to_mcap >= 3:
            out.append(
                _("Large dilution overhang: FDV is {ratio}x market cap").format(
                    ratio=loc.number(self.fdv_to_mcap, 1)
                )
            )
        if self.inflation_annual_pct is not None and self.inflation_annual_pct >= 20:
            out.append(
                _("High supply inflation: {pct}/yr").format(
                    pct=loc.pct(self.inflation_annual_pct, signed=False, digits=0)
                )
            )
        if self.distribution_health == "concentrated":
            out.append(_("Holdings are concentrated in a few wallets"))
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
    github_activity: GithubActivity = "unknown"
    audits_status: AuditStatus = "unknown"
    audit_links: list[str] = Field(default_factory=list)
    backers: list[str] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)  # homepage, twitter, github, whitepaper…
    partnerships: list[Headline] = Field(default_factory=list)
    credibility_score: float | None = None  # 0..10, seed scale
    team_score: float | None = None  # 0..100

    def key_facts(self, loc: Localizer = ENGLISH) -> list[str]:
        _ = loc._
        facts: list[str] = []
        if self.repos:
            facts.append(
                _(
                    "GitHub activity {level}: {commits} commits by {contributors} "
                    "contributors in 90 days ({repos})"
                ).format(
                    level=_(self.github_activity),
                    commits=self.commits_90d,
                    contributors=self.active_contributors_90d,
                    repos=", ".join(r.full_name for r in self.repos),
                )
            )
        elif self.github_activity == "none":
            facts.append(_("No public code repository linked"))
        if self.stars is not None:
            facts.append(
                _("{stars} GitHub stars, {forks} forks").format(
                    stars=loc.number(self.stars), forks=loc.number(self.forks or 0)
                )
            )
        if self.last_push is not None:
            facts.append(_("Last code push {date}").format(date=loc.date(self.last_push)))
        if self.audits_status != "unknown":
            reports = (
                _(" ({n} reports)").format(n=len(self.audit_links)) if self.audit_links else ""
            )
            facts.append(_("Audits: {status}").format(status=_(self.audits_status)) + reports)
        if self.backers:
            facts.append(_("Backers: {names}").format(names=", ".join(self.backers[:5])))
        if self.partnerships:
            facts.append(
                _("{n} recent partnership/integration headlines").format(n=len(self.partnerships))
            )
        if self.credibility_score is not None:
            facts.append(
                _("Credibility {score}/10").format(score=loc.number(self.credibility_score, 1))
            )
        return facts

    def risks(self, loc: Localizer = ENGLISH) -> list[str]:
        _ = loc._
        out: list[str] = []
        if self.audits_status == "no audits":
            out.append(_("No audits listed on DefiLlama"))
        if self.github_activity in ("low", "none"):
            out.append(_("Little or no public development activity in 90 days"))
        if self.repos and all(r.archived for r in self.repos):
            out.append(_("Code repositories are archived"))
        return out


# What a tool really returns (ToolResult itself only declares their common shape).
ConcreteToolResult = OnchainResult | SentimentResult | TokenomicsResult | TeamResult
AnyToolResult = Annotated[ConcreteToolResult, Field(discriminator="tool")]


def as_any_results(results: Mapping[str, ToolResult]) -> dict[str, AnyToolResult]:
    """`results` typed as the union the events carry: every result a tool returns is one of the
    four concrete classes (ToolResult itself only declares their shape)."""
    out: dict[str, AnyToolResult] = {}
    for name, result in results.items():
        if not isinstance(result, ConcreteToolResult):
            raise TypeError(f"{name}: {type(result).__name__} is not a concrete tool result")
        out[name] = result
    return out


RESULT_TYPES: dict[ToolName, type[ConcreteToolResult]] = {
    "onchain": OnchainResult,
    "sentiment": SentimentResult,
    "tokenomics": TokenomicsResult,
    "team": TeamResult,
}
