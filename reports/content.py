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
    insight: str
    risk_flags: list[str] = Field(default_factory=list)
    as_of: datetime | None = None  # newest source time among the figures above
    age_seconds: float = 0.0  # age of the data when the report was built
    stale: bool = False
    url: str

    @property
    def display(self) -> str:
        return f"{self.name} ({self.symbol})"


class ReportContent(BaseModel):
    report_date: date
    generated_at: datetime
    market: MarketOverview
    projects: list[ProjectLine]
    movers: list[str] = Field(default_factory=list)  # project ids, biggest |24h change| first
    intro: str
    intro_by: str  # "deterministic" or the model's name
    has_chart: bool = False

    def project(self, project_id: str) -> ProjectLine:
        return next(p for p in self.projects if p.id == project_id)

    @property
    def risk_lines(self) -> list[tuple[ProjectLine, str]]:
        return [(p, flag) for p in self.projects for flag in p.risk_flags]

    def seed_shape(self) -> dict[str, object]:
        """The seed API's shape: date, topProjects[projectId, queryCount, priceChange24h,
        sentimentScore], generatedAt."""
        return {
            "date": self.report_date.isoformat(),
            "topProjects": [{"projectId": p.id, "queryCount": p.query_count,
                             "priceChange24h": p.change_24h_pct,
                             "sentimentScore": p.sentiment_score} for p in self.projects],
            "generatedAt": self.generated_at.isoformat(),
        }
