"""Alert evaluation, firing and the alert message (issue 13).

Every minute (`reports.jobs.evaluate_alerts`) `evaluate_prices` fetches the price of every coin
an active price or move alert names in one batched CoinGecko `/simple/price` call per
`IDS_PER_CALL` coins (through `tools.http.get_json` as a background call, so it shares the
source budget), then one statement in PostgreSQL finds the crossings, fires them and fans the
firings out into the delivery ledger:

- an armed alert whose condition holds fires: it is disarmed, its `crossings` count goes up,
  an `alert_events` row (unique per alert and crossing) and a `deliveries` row (kind 'alert',
  ref = the event id) are written in the same statement;
- a disarmed alert re-arms once its condition has cleared by `ALERT_REARM_MARGIN` of its level
  ("above 70000" re-arms below 69,300), so a price flapping around the level fires once;
- the rows are selected `FOR UPDATE` in id order and the condition is re-checked on the row
  each evaluator locks, so two evaluators of the same minute fire a crossing once.

The ledger's send jobs then deliver each firing once (reports/deliver.py). A worker killed
after firing but before deferring the send leaves a pending row; the next evaluation defers
a send for every pending alert row no queued job holds (`defer_orphaned`).

Risk-flag and sentiment alerts are evaluated every 30 minutes (`evaluate_slow`) from the
analysis cache and snapshots (`tools.analysis.run_tool`): a risk alert fires when the token
gains a contract risk flag with status yes that it did not have (the first reading is the
baseline); a sentiment alert fires when the score has moved by its level in points since it
was set or last fired.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chainlens.deps import Deps
from chainlens.i18n import ENGLISH, N_, Localizer
from reports.watch import format_price
from tools.http import SourceError, get_json
from tools.results import Project, SentimentResult, TokenomicsResult, ToolName
from tools.sources.coingecko import page_url

log = logging.getLogger(__name__)

SOURCE = "CoinGecko"
IDS_PER_CALL = 250  # coins per /simple/price call (well under CoinGecko's URL limits)
STALE_PRICE_S = 15 * 60  # a price CoinGecko has not updated for this long is not evaluated
SLOW_CONCURRENCY = 4  # projects whose risk/sentiment results are read at once


@dataclass(frozen=True, slots=True)
class Quote:
    project_id: str
    price: float | None
    change_24h: float | None
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class CycleSummary:
    coins: int
    quotes: int
    calls: int
    fired: int
    rearmed: int
    deferred: int
    db_s: float = 0.0  # time in the cycle's own statements (coins query and the pass)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_simple_price(body: Any, *, now: datetime | None = None) -> list[Quote]:
    """`/simple/price` -> quotes; coins without a usable price or time, or stale, are left out."""
    now = now or datetime.now(UTC)
    quotes: list[Quote] = []
    if not isinstance(body, dict):
        return quotes
    for coin_id, row in body.items():
        if not isinstance(row, dict):
            continue
        price = _num(row.get("usd"))
        stamp = _num(row.get("last_updated_at"))
        if price is None or price <= 0 or stamp is None:
            continue
        observed = datetime.fromtimestamp(stamp, UTC)
        if (now - observed).total_seconds() > STALE_PRICE_S:
            continue
        quotes.append(Quote(coin_id, price, _num(row.get("usd_24h_change")), observed))
    return quotes


async def fetch_prices(deps: Deps, coin_ids: list[str]) -> tuple[list[Quote], int]:
    """Prices of many coins, `IDS_PER_CALL` per upstream call; (quotes, calls made).

    A chunk that fails is logged and skipped (its coins are simply not evaluated this minute)."""
    url = str(deps.settings.coingecko_base_url).rstrip("/") + "/simple/price"
    key = deps.settings.coingecko_api_key
    headers = {"x-cg-demo-api-key": key.get_secret_value()} if key else None
    quotes: list[Quote] = []
    calls = 0
    for start in range(0, len(coin_ids), IDS_PER_CALL):
        chunk = coin_ids[start : start + IDS_PER_CALL]
        params = {
            "ids": ",".join(chunk),
            "vs_currencies": "usd",
            "include_24hr_change": "true",
            "include_last_updated_at": "true",
        }
        calls += 1
        try:
            body = await get_json(
                deps, url, source=SOURCE, params=params, headers=headers, background=True
            )
        except SourceError as exc:
            log.warning("alerts: prices of %d coins unavailable: %s", len(chunk), exc.reason)
            continue
        quotes += parse_simple_price(body)
    return quotes, calls


async def alerted_coins(deps: Deps) -> list[str]:
    rows = await deps.db.fetch(
        "SELECT DISTINCT project_id FROM alerts WHERE active AND kind IN ('above', 'below', "
        "'move') ORDER BY project_id"
    )
    return [r["project_id"] for r in rows]


# One statement: lock the alerts whose state changes (in id order), update them, write an
# event per firing and a ledger row per event. `holds`/`cleared` are computed from the row
# as locked, so a second evaluator of the same prices finds nothing left to fire.
_PRICE_PASS = """
WITH p AS (
    SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[], $4::timestamptz[])
        AS p(project_id, price, change, observed_at)
), obs AS (
    SELECT a.id, a.armed, a.channel, a.destination, p.observed_at,
           CASE WHEN a.kind = 'move' THEN p.change ELSE p.price END AS value,
           CASE a.kind WHEN 'above' THEN p.price >= a.level
                       WHEN 'below' THEN p.price <= a.level
                       ELSE abs(p.change) >= a.level END AS holds,
           CASE a.kind WHEN 'above' THEN p.price < a.level * (1 - $5::float8)
                       WHEN 'below' THEN p.price > a.level * (1 + $5::float8)
                       ELSE abs(p.change) < a.level * (1 - $5::float8) END AS cleared
      FROM alerts a JOIN p ON p.project_id = a.project_id
     WHERE a.active AND a.kind IN ('above', 'below', 'move')
       AND (a.kind <> 'move' OR p.change IS NOT NULL)
       AND CASE WHEN a.armed
                THEN CASE a.kind WHEN 'above' THEN p.price >= a.level
                                 WHEN 'below' THEN p.price <= a.level
                                 ELSE abs(p.change) >= a.level END
                ELSE CASE a.kind WHEN 'above' THEN p.price < a.level * (1 - $5::float8)
                                 WHEN 'below' THEN p.price > a.level * (1 + $5::float8)
                                 ELSE abs(p.change) < a.level * (1 - $5::float8) END
           END
     ORDER BY a.id
       FOR UPDATE OF a
), upd AS (
    UPDATE alerts a
       SET armed = NOT obs.armed,
           crossings = a.crossings + obs.armed::int,
           last_fired_at = CASE WHEN obs.armed THEN now() ELSE a.last_fired_at END,
           last_value = obs.value, last_observed_at = obs.observed_at
      FROM obs
     WHERE a.id = obs.id
    RETURNING a.id, a.crossings, obs.armed AS fired, obs.value, obs.observed_at,
              a.channel, a.destination
), ev AS (
    INSERT INTO alert_events (alert_id, crossing, value, source, observed_at)
    SELECT id, crossings, value, 'CoinGecko', observed_at FROM upd WHERE fired
    ON CONFLICT (alert_id, crossing) DO NOTHING
    RETURNING id, alert_id
), dl AS (
    INSERT INTO deliveries (kind, ref, channel, destination)
    SELECT 'alert', ev.id::text, upd.channel, upd.destination
      FROM ev JOIN upd ON upd.id = ev.alert_id
    ON CONFLICT (kind, ref, channel, destination) DO NOTHING
    RETURNING id, channel, edition
)
SELECT (SELECT count(*) FROM upd WHERE fired) AS fired,
       (SELECT count(*) FROM upd WHERE NOT fired) AS rearmed,
       (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM dl) AS ids,
       (SELECT coalesce(array_agg(channel ORDER BY id), '{}') FROM dl) AS channels,
       (SELECT coalesce(array_agg(edition ORDER BY id), '{}') FROM dl) AS editions
"""  # noqa: S105 - a SQL pass over the prices, not a password

Row = tuple[int, str, str]  # a ledger row to send: (delivery id, channel, edition)


async def apply_quotes(deps: Deps, quotes: list[Quote]) -> tuple[int, int, list[Row]]:
    """The set-based pass: (fired, re-armed, ledger rows to send)."""
    if not quotes:
        return 0, 0, []
    row = await deps.db.fetchrow(
        _PRICE_PASS,
        [q.project_id for q in quotes],
        [q.price for q in quotes],
        [q.change_24h for q in quotes],
        [q.observed_at for q in quotes],
        deps.settings.alert_rearm_margin,
    )
    assert row is not None
    rows = list(zip(row["ids"], row["channels"], row["editions"], strict=True))
    return int(row["fired"]), int(row["rearmed"]), rows


async def defer(deps: Deps, rows: list[Row]) -> int:
    """Send jobs for new ledger rows, batched per channel (reports.deliver.defer_rows)."""
    from reports.deliver import defer_rows

    return await defer_rows(deps, rows) if rows else 0


async def defer_orphaned(deps: Deps) -> int:
    """Defer sends for pending alert rows that no queued send job holds (a worker died between
    firing and deferring); the ledger's claim keeps a row from being sent twice anyway."""
    queued = {
        int(i)
        for i in await deps.db.fetchval(
            "SELECT coalesce(array_agg(DISTINCT e::bigint), '{}') FROM procrastinate_jobs j, "
            "jsonb_array_elements_text(j.args -> 'delivery_ids') AS e "
            "WHERE j.task_name = 'deliveries.send' AND j.status IN ('todo', 'doing')"
        )
    }
    pending = await deps.db.fetch(
        "SELECT id, channel, edition FROM deliveries WHERE kind = 'alert' AND state = 'pending' "
        "ORDER BY id"
    )
    rows = [r for r in pending if r["id"] not in queued]
    return await defer(deps, [(r["id"], r["channel"], r["edition"]) for r in rows])


async def evaluate_prices(deps: Deps) -> CycleSummary:
    """One evaluation cycle of price and 24 h move alerts (the every-minute job)."""
    orphans = await defer_orphaned(deps)
    started = time.perf_counter()
    coins = await alerted_coins(deps)
    db_s = time.perf_counter() - started
    quotes, calls = await fetch_prices(deps, coins)
    started = time.perf_counter()
    fired, rearmed, rows = await apply_quotes(deps, quotes)
    db_s += time.perf_counter() - started
    deferred = await defer(deps, rows)
    if fired or orphans:
        log.info(
            "alerts: %d fired, %d re-armed, %d send jobs (%d for earlier firings)",
            fired,
            rearmed,
            deferred + orphans,
            orphans,
        )
    return CycleSummary(
        coins=len(coins),
        quotes=len(quotes),
        calls=calls,
        fired=fired,
        rearmed=rearmed,
        deferred=deferred + orphans,
        db_s=db_s,
    )


# --- risk flags and sentiment (slow cadence) -------------------------------------------------

_FIRE_SLOW = """
WITH ev AS (
    INSERT INTO alert_events (alert_id, crossing, value, detail, source, observed_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (alert_id, crossing) DO NOTHING
    RETURNING id
)
INSERT INTO deliveries (kind, ref, channel, destination)
SELECT 'alert', ev.id::text, $7, $8 FROM ev
ON CONFLICT (kind, ref, channel, destination) DO NOTHING
RETURNING id, channel, edition
"""


async def _project(deps: Deps, project_id: str, display: str) -> Project:
    from tools.resolve import get_project

    found = await get_project(deps, project_id)
    if found is not None:
        return found
    name, _, symbol = display.rstrip(")").rpartition(" (")
    return Project(id=project_id, symbol=symbol or project_id, name=name or display)


async def _risk_pass(deps: Deps, project_id: str, result: TokenomicsResult) -> list[Row]:
    yes = sorted({f.name for f in result.flags if f.status == "yes"})
    cleared = {f.name for f in result.flags if f.status == "no"}
    if not result.flags or all(f.status == "unknown" for f in result.flags):
        return []  # the contract scan gave nothing this time: neither new nor cleared
    source = next((e.source for e in result.evidence if "goplus" in e.source.lower()), "GoPlus")
    refs: list[Row] = []
    async with deps.db.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT id, crossings, known_flags, channel, destination FROM alerts "
            "WHERE project_id = $1 AND kind = 'risk' AND active "
            "AND (last_observed_at IS NULL OR last_observed_at < $2) ORDER BY id FOR UPDATE",
            project_id,
            result.as_of,
        )
        for row in rows:
            known = row["known_flags"]
            new = [] if known is None else [f for f in yes if f not in known]
            keep = sorted(({*(known or [])} - cleared) | set(yes))
            crossing = row["crossings"] + (1 if new else 0)
            await conn.execute(
                "UPDATE alerts SET known_flags = $2, last_observed_at = $3, crossings = $4, "
                "last_fired_at = CASE WHEN $5 THEN now() ELSE last_fired_at END WHERE id = $1",
                row["id"],
                keep,
                result.as_of,
                crossing,
                bool(new),
            )
            if new:
                refs += [
                    (r["id"], r["channel"], r["edition"])
                    for r in await conn.fetch(
                        _FIRE_SLOW,
                        row["id"],
                        crossing,
                        float(len(new)),
                        ", ".join(new),
                        source,
                        result.as_of,
                        row["channel"],
                        row["destination"],
                    )
                ]
    return refs


async def _sentiment_pass(deps: Deps, project_id: str, result: SentimentResult) -> list[Row]:
    if result.score is None:
        return []
    score = float(result.score)
    refs: list[Row] = []
    async with deps.db.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT id, level, crossings, baseline, channel, destination FROM alerts "
            "WHERE project_id = $1 AND kind = 'sentiment' AND active "
            "AND (last_observed_at IS NULL OR last_observed_at < $2) ORDER BY id FOR UPDATE",
            project_id,
            result.as_of,
        )
        for row in rows:
            base = row["baseline"]
            fired = base is not None and abs(score - base) >= row["level"]
            crossing = row["crossings"] + (1 if fired else 0)
            await conn.execute(
                "UPDATE alerts SET baseline = CASE WHEN baseline IS NULL OR $5 THEN $2 "
                "ELSE baseline END, last_value = $2, last_observed_at = $3, crossings = $4, "
                "last_fired_at = CASE WHEN $5 THEN now() ELSE last_fired_at END WHERE id = $1",
                row["id"],
                score,
                result.as_of,
                crossing,
                fired,
            )
            if fired:
                refs += [
                    (r["id"], r["channel"], r["edition"])
                    for r in await conn.fetch(
                        _FIRE_SLOW,
                        row["id"],
                        crossing,
                        score,
                        f"{base:.0f} → {score:.0f}",
                        SENTIMENT_SOURCE,
                        result.as_of,
                        row["channel"],
                        row["destination"],
                    )
                ]
    return refs


async def evaluate_slow(deps: Deps) -> int:
    """Risk-flag and sentiment alerts from the analysis cache/snapshots; returns firings."""
    from tools.analysis import run_tool

    rows = await deps.db.fetch(
        "SELECT project_id, kind, min(display) AS display FROM alerts "
        "WHERE active AND kind IN ('risk', 'sentiment') GROUP BY project_id, kind "
        "ORDER BY project_id, kind"
    )
    gate = asyncio.Semaphore(SLOW_CONCURRENCY)

    async def one(project_id: str, kind: str, display: str) -> list[Row]:
        async with gate:
            project = await _project(deps, project_id, display)
            tool: ToolName = "tokenomics" if kind == "risk" else "sentiment"
            outcome = await run_tool(deps, tool, project)
            if isinstance(outcome.result, TokenomicsResult):
                return await _risk_pass(deps, project_id, outcome.result)
            if isinstance(outcome.result, SentimentResult):
                return await _sentiment_pass(deps, project_id, outcome.result)
            return []

    results = await asyncio.gather(*(one(r["project_id"], r["kind"], r["display"]) for r in rows))
    refs = [ref for found in results for ref in found]
    await defer(deps, refs)
    return len(refs)


# --- the alert message -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Firing:
    """An alert event with its alert: what the message says."""

    event_id: int
    alert_id: int
    project_id: str
    display: str
    kind: str
    level: float | None
    value: float | None
    detail: str | None
    source: str
    observed_at: datetime
    channel: str
    destination: str

    def headline(self, loc: Localizer = ENGLISH) -> str:
        _ = loc._
        if self.kind in ("above", "below") and self.value is not None and self.level is not None:
            text = (
                _("{project} is above {level}: {price}")
                if self.kind == "above"
                else _("{project} is below {level}: {price}")
            )
            return text.format(
                project=self.display,
                level=price_text(self.level, loc),
                price=price_text(self.value, loc),
            )
        if self.kind == "move" and self.value is not None:
            return _("{project} moved {change} in 24 h").format(
                project=self.display, change=loc.pct(self.value)
            )
        if self.kind == "risk":
            flags = ", ".join(_(name) for name in (self.detail or "").split(", ") if name)
            return _("{project}: new contract risk flag — {flags}").format(
                project=self.display, flags=flags or _("see the report")
            )
        return (
            _("{project}: news sentiment swung {change}")
            .format(project=self.display, change=self.detail or "")
            .rstrip()
        )

    def when(self, loc: Localizer = ENGLISH) -> str:
        at = self.observed_at.astimezone(UTC)
        return f"{loc.date(at)} {at:%H:%M} UTC"

    def source_line(self, loc: Localizer = ENGLISH) -> str:
        return loc._("Source: {source}, {time}").format(
            source=loc._(self.source), time=self.when(loc)
        )

    def footer(self, loc: Localizer = ENGLISH) -> str:
        _ = loc._
        line = _("Alert #{id}: {condition}.").format(
            id=self.alert_id, condition=condition_text(self.kind, self.level, loc)
        )
        tail = {
            "above": N_("It re-arms once the price has fallen back."),
            "below": N_("It re-arms once the price has recovered."),
            "move": N_("It re-arms once the 24 h move is back inside the level."),
        }.get(self.kind)
        return f"{line} {_(tail)}" if tail else line


SENTIMENT_SOURCE = N_("news sentiment")  # the source of a sentiment alert's reading


def price_text(x: float, loc: Localizer = ENGLISH) -> str:
    """A price as a level or a figure: $70,000 / $3,012.50 (vi 70.000 USD / 3.012,50 USD)."""
    if loc.english or x < 1:
        return format_price(x) if loc.english else loc.usd(x)
    return f"{loc.number(x, 0 if float(x).is_integer() else 2)} USD"


def _number_text(x: float, loc: Localizer) -> str:
    return f"{x:g}" if loc.english else f"{x:g}".replace(".", ",")


def condition_text(kind: str, level: float | None, loc: Localizer = ENGLISH) -> str:
    """What an alert watches, in the reader's language: 'price above $70,000', ..."""
    _ = loc._
    if kind == "above" and level is not None:
        return _("price above {price}").format(price=price_text(level, loc))
    if kind == "below" and level is not None:
        return _("price below {price}").format(price=price_text(level, loc))
    if kind == "move" and level is not None:
        return _("a 24 h move of ±{level}%").format(level=_number_text(level, loc))
    if kind == "sentiment" and level is not None:
        return _("a sentiment swing of {level} points").format(level=_number_text(level, loc))
    return _("a new contract risk flag")


async def load_firing(deps: Deps, event_id: int) -> Firing | None:
    row = await deps.db.fetchrow(
        "SELECT e.id, e.alert_id, e.value, e.detail, e.source, e.observed_at, a.project_id, "
        "a.display, a.kind, a.level, a.channel, a.destination FROM alert_events e "
        "JOIN alerts a ON a.id = e.alert_id WHERE e.id = $1",
        event_id,
    )
    if row is None:
        return None
    return Firing(
        event_id=row["id"],
        alert_id=row["alert_id"],
        project_id=row["project_id"],
        display=row["display"],
        kind=row["kind"],
        level=row["level"],
        value=row["value"],
        detail=row["detail"],
        source=row["source"],
        observed_at=row["observed_at"],
        channel=row["channel"],
        destination=row["destination"],
    )


def research_data(project_id: str) -> str:
    return f"research:{project_id}"


def chart_data(project_id: str) -> str:
    return f"ask:chart:{project_id}"


def _stops(f: Firing, loc: Localizer) -> str:
    return loc._("/alert delete {id} stops it.").format(id=f.alert_id)


def telegram_html(f: Firing, loc: Localizer = ENGLISH) -> str:
    return (
        f"🔔 <b>{html.escape(f.headline(loc))}</b>\n{html.escape(f.source_line(loc))}\n"
        f"<i>{html.escape(f.footer(loc))}</i> {html.escape(_stops(f, loc))}"
    )


def telegram_markup(f: Firing, loc: Localizer = ENGLISH) -> dict[str, Any] | None:
    buttons = [
        {"text": "🔎 " + loc._("Research"), "callback_data": research_data(f.project_id)},
        {"text": "📈 " + loc._("Chart"), "callback_data": chart_data(f.project_id)},
    ]
    buttons = [b for b in buttons if len(b["callback_data"].encode()) <= 64]
    return {"inline_keyboard": [buttons]} if buttons else None


def discord_payload(
    f: Firing, loc: Localizer = ENGLISH
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    embed = {
        "title": f"🔔 {f.headline(loc)}"[:256],
        "description": f.source_line(loc),
        "footer": {"text": f"{f.footer(loc)} {_stops(f, loc)}"},
        "timestamp": f.observed_at.astimezone(UTC).isoformat(),
    }
    buttons = [
        {
            "type": 2,
            "style": 2,
            "label": loc._("Research"),
            "emoji": {"name": "🔎"},
            "custom_id": research_data(f.project_id),
        },
        {
            "type": 2,
            "style": 2,
            "label": loc._("Chart"),
            "emoji": {"name": "📈"},
            "custom_id": chart_data(f.project_id),
        },
    ]
    buttons = [b for b in buttons if len(str(b["custom_id"])) <= 100]
    return [embed], ([{"type": 1, "components": buttons}] if buttons else [])


def email_parts(f: Firing, base_url: str, loc: Localizer = ENGLISH) -> tuple[str, str, str]:
    _ = loc._
    research = page_url(f.project_id)
    chart = f"{base_url}/api/chart/{f.project_id}.png"
    account = f"{base_url}/account"
    headline, source, footer = f.headline(loc), f.source_line(loc), f.footer(loc)
    subject = _("ChainLens alert: {headline}").format(headline=headline)[:200]
    on_coingecko = _("{project} on CoinGecko").format(project=f.display)
    manage, chart_label = _("Manage your alerts"), _("Chart")
    text = (
        "\n".join(
            [
                headline,
                source,
                "",
                footer,
                "",
                _("Chart: {url}").format(url=chart),
                _("On CoinGecko: {url}").format(url=research),
                _("Manage your alerts: {url}").format(url=account),
            ]
        )
        + "\n"
    )
    body = (
        f"<p><b>🔔 {html.escape(headline)}</b><br>{html.escape(source)}</p>"
        f"<p>{html.escape(footer)}</p>"
        f'<p><a href="{html.escape(chart)}">{html.escape(chart_label)}</a> · '
        f'<a href="{html.escape(research)}">{html.escape(on_coingecko)}</a> · '
        f'<a href="{html.escape(account)}">{html.escape(manage)}</a></p>'
    )
    return subject, body, text
