"""Sentiment tool: project news from RSS scored with VADER, CoinGecko votes, Fear & Greed."""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from chainlens.deps import Deps
from tools import scoring
from tools.collect import Collector, ToolRun
from tools.results import Headline, Project, SentimentResult, utcnow
from tools.sources import coingecko, feargreed, news

# Crypto jargon missing from VADER's stock lexicon (valence on VADER's −4..+4 scale).
CRYPTO_LEXICON = {
    "bullish": 2.5,
    "bearish": -2.5,
    "rug": -3.0,
    "rugpull": -3.5,
    "rugged": -3.0,
    "exploit": -2.8,
    "exploited": -2.8,
    "hack": -3.0,
    "hacked": -3.0,
    "hacker": -2.5,
    "ath": 2.0,
    "pump": 1.2,
    "dump": -2.0,
    "dumps": -2.0,
    "moon": 2.0,
    "mooning": 2.3,
    "heist": -3.0,
    "drained": -2.8,
    "depeg": -2.5,
    "liquidated": -2.0,
    "outage": -2.0,
}
MAX_HEADLINES = 5


@functools.cache
def analyzer() -> SentimentIntensityAnalyzer:
    """VADER with the crypto lexicon; built once (it reads its lexicon file)."""
    vader = SentimentIntensityAnalyzer()
    vader.lexicon.update(CRYPTO_LEXICON)
    return vader


def compound(text: str) -> float:
    return float(analyzer().polarity_scores(text)["compound"])


async def project_news(
    deps: Deps, c: Collector, project: Project, fields: tuple[str, ...]
) -> list[news.NewsItem] | None:
    """Matched items from every configured feed; None when no feed could be read."""
    feeds = deps.settings.news_feeds

    async def feed(url: str) -> list[news.NewsItem] | None:
        return await c.fetch(
            news.source_name(url),
            news.fetch_feed(deps, url),
            fields=(),
            url=url,
            dated=news.newest_published,
        )

    results = await asyncio.gather(*(feed(url) for url in feeds))
    if feeds and all(r is None for r in results):
        reasons = "; ".join(sorted({news.source_name(u) for u in feeds}))
        for name in fields:
            c.lack(name, f"no news feed could be fetched ({reasons})")
        return None
    items = [item for feed_items in results if feed_items for item in feed_items]
    return news.matching(items, project)


def _age_hours(item: news.NewsItem, now: datetime) -> float | None:
    if item.published_at is None:
        return None
    return (now - item.published_at).total_seconds() / 3600


async def run_sentiment(deps: Deps, project: Project) -> ToolRun:
    c = Collector()
    page = coingecko.page_url(project.id)
    news_call = project_news(deps, c, project, ("headlines", "score"))
    coin_call = c.fetch(
        coingecko.SOURCE,
        coingecko.fetch_coin(deps, project.id),
        fields=("votes_up_pct",),
        url=page,
        dated=coingecko.last_updated,
    )
    fng_call = c.fetch(
        feargreed.SOURCE,
        feargreed.fetch(deps),
        fields=("fear_greed",),
        url=feargreed.PAGE_URL,
        dated=lambda fg: fg.as_of,
    )
    # (made before gather: inside it mypy would infer each call's type from gather's)
    matched, coin, fng = await asyncio.gather(news_call, coin_call, fng_call)
    r = SentimentResult(project_id=project.id)
    now = utcnow()
    scored: list[tuple[float, float, news.NewsItem]] = []
    for item in matched or []:
        age = _age_hours(item, now)
        if age is not None and age <= 24 * 7:
            scored.append((compound(item.text), age, item))
    r.volume_24h = sum(1 for _, age, _ in scored if age <= 24)
    r.volume_7d = len(scored)
    r.headlines = [
        Headline(
            title=i.title,
            url=i.url,
            source=i.source,
            published_at=i.published_at,
            compound=round(cmp, 3),
        )
        for cmp, _, i in scored[:MAX_HEADLINES]
    ]
    if coin:
        r.votes_up_pct = coingecko.votes_up_pct(coin)
    if fng:
        r.fear_greed, r.fear_greed_label = fng.value, fng.label

    if matched is not None and len(scored) < scoring.MIN_NEWS_ITEMS:
        c.lack(
            "score",
            f"only {len(scored)} news item(s) about {project.name} in the last 7 days "
            f"(need {scoring.MIN_NEWS_ITEMS})",
        )
    if len(scored) >= scoring.MIN_NEWS_ITEMS:
        news_part = scoring.news_score((cmp, age) for cmp, age, _ in scored)
        r.score = scoring.sentiment_score(news_part, r.votes_up_pct, r.fear_greed)
        r.label = scoring.band(r.score)
        recent = scoring.news_score((cmp, age) for cmp, age, _ in scored if age <= 24)
        earlier = scoring.news_score((cmp, age - 24) for cmp, age, _ in scored if 24 < age <= 96)
        r.trend = scoring.trend(r.score, recent, earlier)
    c.fill_unreported(r, {"votes_up_pct": coingecko.SOURCE})
    c.finish(r)
    return ToolRun(r, c.called, c.ok)
