"""What a daily report says: typed, JSON-serialisable, every figure with its source time."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class Quote(BaseModel):
    """A coin's price line in the market overview."""

    id: str
    symbol: str
    price_usd: float | None = None
    change_24h_pct: float | None = None
    as_of: datetime | None = None
    stale: bool = False


class MarketOverview(BaseModel):
    btc: Quote
    eth: Quote
    total_market_cap_usd: float | None = None
    total_market_cap_change_24h_pct: float | None = None
    total_as_of: datetime | None = None
    fear_greed: int | None = None
    fear_greed_label: str | None = None
    fear_greed_as_of: datetime | None = None
    missing: dict[str, str] = Field(default_factory=dict)


class ProjectLine(BaseModel):
    id: str
    name: str
    symbol: str
    query_count: int
    price_usd: float | None = None
    change_24h_pct: float | None = None
    sentiment_score: float | None = None
    sentiment_label: str | None = None
    insight: str  # English; `insights` has it in every language (reports built before: none)
    risk_flags: list[str] = Field(default_factory=list)
    # language -> the insight / the risk flags written in it (built once, from the same data)
    insights: dict[str, str] = Field(default_factory=dict)
    risk_flags_by_language: dict[str, list[str]] = Field(default_factory=dict)
    as_of: datetime | None = None  # newest source time among the figures above
    age_seconds: float = 0.0  # age of the data when the report was built
    stale: bool = False
    url: str

    @property
    def display(self) -> str:
        return f"{self.name} ({self.symbol})"

    def insight_in(self, language: str) -> str:
        return self.insights.get(language) or self.insight

    def flags_in(self, language: str) -> list[str]:
        return self.risk_flags_by_language.get(language, self.risk_flags)


class Intro(BaseModel):
    """The opening in one language, and who wrote it ("deterministic" or the model)."""

    text: str
    by: str


class ReportContent(BaseModel):
    report_date: date
    generated_at: datetime
    market: MarketOverview
    projects: list[ProjectLine]
    movers: list[str] = Field(default_factory=list)  # project ids, biggest |24h change| first
    intro: str  # English
    intro_by: str  # "deterministic" or the model's name
    has_chart: bool = False
    intros: dict[str, Intro] = Field(default_factory=dict)  # language -> its own opening

    def project(self, project_id: str) -> ProjectLine:
        return next(p for p in self.projects if p.id == project_id)

    @property
    def risk_lines(self) -> list[tuple[ProjectLine, str]]:
        return self.risk_lines_in("en")

    def risk_lines_in(self, language: str) -> list[tuple[ProjectLine, str]]:
        return [(p, flag) for p in self.projects for flag in p.flags_in(language)]

    def intro_in(self, language: str) -> Intro:
        return self.intros.get(language) or Intro(text=self.intro, by=self.intro_by)

    def seed_shape(self) -> dict[str, object]:
        """The seed API's shape: date, topProjects[projectId, queryCount, priceChange24h,
        sentimentScore], generatedAt."""
        return {
            "date": self.report_date.isoformat(),
            "topProjects": [
                {
                    "projectId": p.id,
                    "queryCount": p.query_count,
                    "priceChange24h": p.change_24h_pct,
                    "sentimentScore": p.sentiment_score,
                }
                for p in self.projects
            ],
            "generatedAt": self.generated_at.isoformat(),
        }
