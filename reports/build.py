"""Build the daily report from the analysis cache and snapshots, fetching only what is missing.

Every figure comes from a tool result (or a market-wide source) with its time; nothing is
invented. The intro is written by the LLM when one is configured, checked so it carries no
figure the data does not, and by the deterministic writer otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from agent.prompts import chat_messages
from chainlens.deps import Deps
from chainlens.i18n import DEFAULT_LANGUAGE, ENGLISH, LANGUAGES, Localizer, localizer
from reports.content import Intro, MarketOverview, ProjectLine, Quote, ReportContent
from tools import market as tools_market
from tools.analysis import analyze
from tools.market import CoinLine
from tools.results import (
    OnchainResult,
    Project,
    SentimentResult,
    TokenomicsResult,
    ToolName,
    utcnow,
)
from tools.sources import coingecko
from tools.warm import known_projects, trending_projects

log = logging.getLogger(__name__)

REPORT_TOOLS: tuple[ToolName, ...] = ("onchain", "sentiment", "tokenomics")
BUILD_CONCURRENCY = 4
MOVERS = 3
BTC = Project(id="bitcoin", symbol="BTC", name="Bitcoin")
ETH = Project(id="ethereum", symbol="ETH", name="Ethereum")


async def top_projects(deps: Deps, report_date: date, limit: int) -> list[tuple[Project, int]]:
    """The most asked-about projects over the report's 24 h (the day before and the day
    itself, `project_usage` being daily), topped up with trending coins when few were asked."""
    rows = await deps.db.fetch(
        """
        SELECT project_id, sum(requests)::int AS n FROM project_usage
         WHERE day BETWEEN $1::date - 1 AND $1::date
         GROUP BY project_id ORDER BY n DESC, project_id LIMIT $2
        """,
        report_date,
        limit,
    )
    counts = {r["project_id"]: r["n"] for r in rows}
    chosen = [(p, counts[p.id]) for p in await known_projects(deps, list(counts))]
    if len(chosen) < limit:
        have = {p.id for p, _ in chosen}
        for project in await trending_projects(deps):
            if len(chosen) >= limit:
                break
            if project.id not in have:
                chosen.append((project, 0))
                have.add(project.id)
    return chosen[:limit]


def _quote(coin_id: str, symbol: str, line: CoinLine | None, stale: bool) -> Quote:
    if line is None:
        return Quote(id=coin_id, symbol=symbol)
    return Quote(
        id=coin_id,
        symbol=symbol,
        price_usd=line.price_usd,
        change_24h_pct=line.change_24h_pct,
        as_of=line.as_of if line.price_usd is not None else None,
        stale=stale,
    )


async def market_overview(deps: Deps) -> MarketOverview:
    """The report's market lines: the same overview a chat "how is the market?" answer reads
    (tools.market), so both show the same cached figures."""
    data = await tools_market.market_overview(deps)
    return MarketOverview(
        btc=_quote(BTC.id, BTC.symbol, data.btc, data.stale),
        eth=_quote(ETH.id, ETH.symbol, data.eth, data.stale),
        total_market_cap_usd=data.total_market_cap_usd,
        total_market_cap_change_24h_pct=(
            data.market_cap_change_24h_pct if data.total_market_cap_usd is not None else None
        ),
        total_as_of=data.total_as_of,
        fear_greed=data.fear_greed,
        fear_greed_label=data.fear_greed_label,
        fear_greed_as_of=data.fear_greed_as_of,
        missing=dict(data.missing),
    )


def _insight(
    onchain: OnchainResult,
    sentiment: SentimentResult,
    tokenomics: TokenomicsResult,
    loc: Localizer = ENGLISH,
) -> str:
    """The one thing worth knowing about this project today, from its tools' own sentences."""
    for risks in (tokenomics.risks(loc), onchain.risks(loc), sentiment.risks(loc)):
        if risks:
            return risks[0]
    if sentiment.score is not None and sentiment.trend in ("bullish", "bearish"):
        return loc._("News sentiment is {trend}: {count} items in 24 h, score {score}/100").format(
            trend=loc._(sentiment.trend),
            count=loc.number(sentiment.volume_24h),
            score=f"{sentiment.score:.0f}",
        )
    facts = onchain.key_facts(loc) or sentiment.key_facts(loc)
    return facts[0] if facts else loc._("No fresh data today")


def _flags(tokenomics: TokenomicsResult, loc: Localizer) -> list[str]:
    return [
        loc._(f.name) + (f" ({loc._(f.detail)})" if f.detail else "")
        for f in tokenomics.flags
        if f.status == "yes" and f.points
    ]


async def project_line(deps: Deps, project: Project, query_count: int) -> ProjectLine:
    outcomes = await analyze(deps, project, REPORT_TOOLS)
    onchain, sentiment, tokenomics = (outcomes[t].result for t in REPORT_TOOLS)
    assert isinstance(onchain, OnchainResult) and isinstance(sentiment, SentimentResult)
    assert isinstance(tokenomics, TokenomicsResult)
    results = (onchain, sentiment, tokenomics)
    newest = max(r.as_of for r in results)
    locs = [localizer(language) for language in LANGUAGES]
    return ProjectLine(
        id=project.id,
        name=project.name,
        symbol=project.symbol.upper(),
        query_count=query_count,
        price_usd=onchain.price_usd,
        change_24h_pct=onchain.change_24h_pct,
        sentiment_score=sentiment.score,
        sentiment_label=sentiment.label,
        insight=_insight(onchain, sentiment, tokenomics),
        risk_flags=_flags(tokenomics, ENGLISH),
        insights={loc.language: _insight(onchain, sentiment, tokenomics, loc) for loc in locs},
        risk_flags_by_language={loc.language: _flags(tokenomics, loc) for loc in locs},
        as_of=newest,
        age_seconds=round(max(0.0, (utcnow() - newest).total_seconds()), 1),
        stale=any(r.stale for r in results),
        url=coingecko.page_url(project.id),
    )


def biggest_movers(lines: Sequence[ProjectLine], n: int = MOVERS) -> list[str]:
    moved = [p for p in lines if p.change_24h_pct is not None]
    moved.sort(key=lambda p: (-abs(p.change_24h_pct or 0.0), p.id))
    return [p.id for p in moved[:n]]


def _pct(x: float | None, loc: Localizer = ENGLISH) -> str:
    return loc._("n/a") if x is None else loc.pct(x)


def _fear_greed_label(label: str | None, loc: Localizer) -> str:
    return loc._(label) if label else loc._("n/a")


def deterministic_intro(
    market: MarketOverview,
    lines: Sequence[ProjectLine],
    movers: Sequence[str],
    loc: Localizer = ENGLISH,
) -> str:
    _ = loc._
    parts = []
    if market.btc.price_usd is not None:
        parts.append(
            _("Bitcoin is {btc} and Ether {eth} over 24 hours").format(
                btc=_pct(market.btc.change_24h_pct, loc), eth=_pct(market.eth.change_24h_pct, loc)
            )
        )
    if market.fear_greed is not None:
        parts.append(
            _("the Fear & Greed index reads {value} ({label})").format(
                value=market.fear_greed, label=_fear_greed_label(market.fear_greed_label, loc)
            )
        )
    text = ("; ".join(parts) + ".") if parts else _("Market data is unavailable this morning.")
    text = text[0].upper() + text[1:]
    if lines:
        asked = [p for p in lines if p.query_count > 0]
        if asked:
            top = asked[0]
            text += " " + (
                _("You asked most about {project} ({n} questions).").format(
                    project=top.display, n=loc.number(top.query_count)
                )
                if top.query_count > 1
                else _("You asked most about {project}.").format(project=top.display)
            )
        if movers:
            mover = next(p for p in lines if p.id == movers[0])
            text += " " + _(
                "The biggest mover among today's projects is {project}, {change}."
            ).format(project=mover.display, change=_pct(mover.change_24h_pct, loc))
    return text


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


LANGUAGE_NAMES = {"en": "English", "vi": "Vietnamese"}


async def llm_intro(deps: Deps, fallback: str, facts: str, language: str = "en") -> tuple[str, str]:
    """Two or three sentences by the model in `language`, or the deterministic text when it is
    absent, fails, or uses a figure the facts do not contain."""
    if deps.llm is None:
        return fallback, "deterministic"
    router = deps.llm
    messages = [
        {
            "role": "system",
            "content": (
                "You write the opening of a daily crypto market note. Two or three sentences, "
                "plain words, no advice, no markdown. Use only figures that appear in the facts, "
                "written exactly as given. Write in "
                f"{LANGUAGE_NAMES.get(language, 'English')}."
            ),
        },
        {"role": "user", "content": f"Facts:\n{facts}\n\nWrite the opening."},
    ]
    try:
        async with asyncio.timeout(deps.settings.llm_timeout_s + 5):
            response = await router.acompletion(
                model=str(router.model_list[0]["model_name"]),
                messages=chat_messages(messages),
                max_tokens=200,
                temperature=0.3,
            )
        text = str(response.choices[0].message.content or "").strip()
    except Exception as exc:  # noqa: BLE001 - any model failure: the deterministic writer
        log.warning(
            "report intro: model unavailable (%s); deterministic intro used", type(exc).__name__
        )
        return fallback, "deterministic"
    allowed = set(_NUMBER.findall(facts))
    if len(text) < 20 or any(n not in allowed for n in _NUMBER.findall(text)):
        log.info("report intro: model text rejected (figures not in the data)")
        return fallback, "deterministic"
    model = str(getattr(response, "model", None) or router.model_list[0]["model_name"])
    return text[:800], model


def _facts(market: MarketOverview, lines: Sequence[ProjectLine], loc: Localizer = ENGLISH) -> str:
    """The model's facts, with figures formatted as the language writes them (the guard
    compares the model's figures with these)."""
    out = [
        f"BTC 24h change {_pct(market.btc.change_24h_pct, loc)}",
        f"ETH 24h change {_pct(market.eth.change_24h_pct, loc)}",
    ]
    if market.fear_greed is not None:
        out.append(
            f"Fear & Greed {market.fear_greed} ({_fear_greed_label(market.fear_greed_label, loc)})"
        )
    out += [
        f"{p.display}: {p.query_count} questions, 24h {_pct(p.change_24h_pct, loc)}; "
        f"{p.insight_in(loc.language)}"
        for p in lines
    ]
    return "\n".join(out)


def change_chart(lines: Sequence[ProjectLine], report_date: date) -> bytes | None:
    from chainlens.charts import render_change_bars

    bars = [(p.symbol, p.change_24h_pct) for p in lines if p.change_24h_pct is not None]
    if not bars:
        return None
    # one image for every language: a title without words to translate
    return render_change_bars(f"24h % · {report_date.isoformat()}", bars)


async def build_report(
    deps: Deps, report_date: date | None = None
) -> tuple[ReportContent, bytes | None]:
    """The report's content and chart (PNG) for a date (default: today, UTC)."""
    report_date = report_date or datetime.now(UTC).date()
    chosen = await top_projects(deps, report_date, deps.settings.report_top_n)
    gate = asyncio.Semaphore(BUILD_CONCURRENCY)

    async def one(project: Project, count: int) -> ProjectLine:
        async with gate:
            return await project_line(deps, project, count)

    market, lines = await asyncio.gather(
        market_overview(deps), asyncio.gather(*(one(p, n) for p, n in chosen))
    )
    movers = biggest_movers(lines)
    intros: dict[str, Intro] = {}
    for language in LANGUAGES:  # one opening per language, from the same data
        loc = localizer(language)
        fallback = deterministic_intro(market, lines, movers, loc)
        text, by = await llm_intro(deps, fallback, _facts(market, lines, loc), language)
        intros[language] = Intro(text=text, by=by)
    chart = await asyncio.to_thread(change_chart, lines, report_date)
    english = intros[DEFAULT_LANGUAGE]
    content = ReportContent(
        report_date=report_date,
        generated_at=utcnow(),
        market=market,
        projects=list(lines),
        movers=movers,
        intro=english.text,
        intro_by=english.by,
        intros=intros,
        has_chart=chart is not None,
    )
    return content, chart


def report_day(value: str | None) -> date:
    """A report date from `YYYY-MM-DD`, `today` or `yesterday` (UTC)."""
    today = datetime.now(UTC).date()
    if value in (None, "", "today"):
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    return date.fromisoformat(str(value))
