"""Broadcast: fan the report out into ledger rows and send jobs, and send one batch of rows.

`broadcast_report` (the job the schedule and `chainlens report send` run) adds a pending row
for every receiving subscriber and defers send jobs for every pending row, in batches on the
platform's queue. Running it twice is harmless: rows are unique, and a row is claimed by
exactly one job right before its request leaves.

`send_batch` sends what a job was given: Telegram and Discord one destination at a time
(several in flight, all paced by the shared limiter), e-mail as one SendGrid request per batch.
A 429 is waited out and retried inside the job a few times; what is still not sent when the
job ends stays pending and the job fails, so procrastinate retries it with backoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from bots.outbound import (
    DiscordMessage,
    EmailMessage,
    EmailRecipient,
    SendOutcome,
    TelegramPart,
    send_discord,
    send_email_batch,
    send_telegram,
)
from chainlens import best_effort
from chainlens.deps import Deps, mget
from chainlens.limiter import SendLimiter
from reports import ledger, render
from reports.ledger import Delivery
from reports.links import unsubscribe_url
from reports.store import get_report, mark_delivery_started
from reports.subscriptions import subscribe, unsubscribe

log = logging.getLogger(__name__)

BATCH_SIZE = {"telegram": 100, "discord": 100, "email": 1000}
RETRIES_IN_JOB = 3  # refused connections and 5xx answers, before the job backs off
RATE_LIMIT_BUDGET_S = 120.0  # 429s are waited out in the job up to this much in total
MAX_WAIT_IN_JOB_S = 60.0


class ReportMissing(LookupError):
    """There is no built report for that date."""


class DeliveriesPending(RuntimeError):
    """Some rows of the batch could not be sent yet; the job is retried with backoff, not
    before `due_in_s` (the earliest time a platform allowed)."""

    def __init__(self, message: str, due_in_s: float = 0.0) -> None:
        super().__init__(message)
        self.due_in_s = due_in_s


@dataclass
class Rendered:
    """One message in every channel and edition, rendered once per job."""

    telegram: dict[str, list[TelegramPart]] = field(default_factory=dict)
    discord: dict[str, DiscordMessage] = field(default_factory=dict)
    email: dict[str, EmailMessage] = field(default_factory=dict)
    image_png: bytes | None = None
    media: dict[str, str] = field(default_factory=dict)  # platform -> hosted copy of the image
    # delivery id -> that subscriber's "Your watchlist" lines (reports only)
    watch: dict[int, list[render.WatchLine]] = field(default_factory=dict)

    @property
    def image_key(self) -> str:
        return hashlib.sha1(self.image_png or b"", usedforsecurity=False).hexdigest()[:20]


async def render_report(deps: Deps, ref: str) -> Rendered:
    stored = await get_report(deps, date.fromisoformat(ref))
    if stored is None:
        raise ReportMissing(f"no report built for {ref}")
    content = stored.content
    base = str(deps.settings.public_base_url).rstrip("/")
    full_url = render.report_url(base, content)
    chart_url = f"{base}/reports/{ref}/chart.png" if stored.chart_png else None
    out = Rendered(image_png=stored.chart_png)
    for edition in ("headline", "full"):
        out.telegram[edition] = render.telegram_parts(content, edition, full_url=full_url)
        out.discord[edition] = render.discord_message(content, edition, full_url=full_url)
        out.email[edition] = render.email_message(content, edition, full_url=full_url,
                                                  chart_url=chart_url)
    return out


class AlertMissing(LookupError):
    """There is no alert event with that id."""


async def render_alert(deps: Deps, ref: str) -> Rendered:
    """One alert firing (ref = alert event id): the figure, its source and time, and Research /
    Chart buttons; the same message for both editions."""
    from reports import alerts

    firing = await alerts.load_firing(deps, int(ref))
    if firing is None:
        raise AlertMissing(f"no alert event {ref}")
    base = str(deps.settings.public_base_url).rstrip("/")
    part = TelegramPart("text", alerts.telegram_html(firing),
                        reply_markup=alerts.telegram_markup(firing))
    embeds, components = alerts.discord_payload(firing)
    subject, body, text = alerts.email_parts(firing, base)
    out = Rendered()
    for edition in ("headline", "full"):
        out.telegram[edition] = [part]
        out.discord[edition] = DiscordMessage(embeds=embeds, components=components)
        out.email[edition] = EmailMessage(subject=subject, html=body, text=text)
    return out


# kind -> ref -> Rendered
RENDERERS: dict[str, Callable[[Deps, str], Awaitable[Rendered]]] = {
    "report": render_report, "alert": render_alert}


@dataclass(frozen=True, slots=True)
class BroadcastSummary:
    added: int
    jobs: int
    pending: int


async def broadcast_report(deps: Deps, report_date: date) -> BroadcastSummary:
    """Fan out the report of `report_date` and defer its send jobs (idempotent)."""
    async with deps.db.acquire() as conn, conn.transaction():
        if not await mark_delivery_started(conn, report_date):
            raise ReportMissing(f"no report built for {report_date.isoformat()}")
        added = await ledger.fan_out_report(conn, report_date)
    await refresh_watched_quotes(deps)
    jobs = await defer_open_rows(deps, "report", report_date.isoformat())
    pending = len(await ledger.open_rows(deps, "report", report_date.isoformat()))
    log.info("report %s: %d new deliveries, %d pending in %d send jobs", report_date, added,
             pending, jobs)
    return BroadcastSummary(added=added, jobs=jobs, pending=pending)


async def refresh_watched_quotes(deps: Deps) -> int:
    """Quotes for every coin on a receiving subscriber's watchlist, batched (one CoinGecko call
    per 250 coins), kept in Redis for the send jobs' "Your watchlist" sections."""
    from tools.quotes import refresh_quotes

    rows = await deps.db.fetch(
        "SELECT DISTINCT w.project_id FROM watchlist_items w JOIN report_subscribers s "
        "ON s.user_id = w.user_id WHERE s.active AND s.confirmed_at IS NOT NULL "
        "ORDER BY w.project_id")
    return await refresh_quotes(deps, [r["project_id"] for r in rows])


async def watch_lines(deps: Deps, rows: list[Delivery]) -> dict[int, list[render.WatchLine]]:
    """Each report row's subscriber's watchlist with the stored quotes (no upstream call)."""
    import json

    from tools.sources._util import iso

    ids = [d.id for d in rows if d.kind == "report" and d.subscriber_id is not None]
    if not ids:
        return {}
    found = await deps.db.fetch(
        "SELECT d.id, w.project_id, w.display FROM deliveries d "
        "JOIN report_subscribers s ON s.id = d.subscriber_id "
        "JOIN watchlist_items w ON w.user_id = s.user_id "
        "WHERE d.id = ANY($1::bigint[]) ORDER BY d.id, w.added_at, w.project_id", ids)
    coins = sorted({r["project_id"] for r in found})
    quotes: dict[str, dict[str, object]] = {}
    if coins:
        raw = await best_effort.attempt(deps.redis, "watchlist quotes",
                                        lambda: mget(deps.redis, [deps.keys("quote", c)
                                                                  for c in coins]), None)
        for coin, value in zip(coins, raw or [None] * len(coins), strict=True):
            if value:
                quotes[coin] = json.loads(value)
    out: dict[int, list[render.WatchLine]] = {}
    for r in found:
        quote = quotes.get(r["project_id"]) or {}
        facts = quote.get("facts") if isinstance(quote.get("facts"), dict) else {}
        assert isinstance(facts, dict)
        price, change = facts.get("price_usd"), facts.get("change_24h_pct")
        out.setdefault(r["id"], []).append(render.WatchLine(
            display=r["display"], price_usd=float(price) if isinstance(price, int | float) else None,
            change_24h_pct=float(change) if isinstance(change, int | float) else None,
            as_of=iso(quote.get("last_updated"))))
    return out


def _telegram_parts(rendered: Rendered, delivery: Delivery) -> list[TelegramPart]:
    parts = rendered.telegram[delivery.edition]
    lines = rendered.watch.get(delivery.id)
    return [*parts, render.watchlist_telegram(lines, datetime.now(UTC))] if lines else parts


def _discord_message(rendered: Rendered, delivery: Delivery) -> DiscordMessage:
    message = rendered.discord[delivery.edition]
    lines = rendered.watch.get(delivery.id)
    if not lines:
        return message
    return dataclasses.replace(message, content=render.watchlist_discord(lines, datetime.now(UTC)))


async def defer_open_rows(deps: Deps, kind: str, ref: str) -> int:
    """Defer send jobs for every pending row: batches per channel (and edition for e-mail)."""
    return await defer_rows(deps, await ledger.open_rows(deps, kind, ref))


async def defer_rows(deps: Deps, rows: Sequence[tuple[int, str, str]]) -> int:
    """Defer send jobs for these (id, channel, edition) rows: batches per channel (and edition
    for e-mail). Alert firings of one evaluation go out in a few jobs, not one per firing."""
    from reports.jobs import send_deliveries

    groups: dict[tuple[str, str], list[int]] = {}
    for delivery_id, channel, edition in rows:
        groups.setdefault((channel, edition if channel == "email" else ""), []).append(delivery_id)
    jobs = 0
    for (channel, _), ids in groups.items():
        size = BATCH_SIZE[channel]
        for start in range(0, len(ids), size):
            await send_deliveries.configure(queue=channel).defer_async(
                delivery_ids=ids[start:start + size])
            jobs += 1
    return jobs


async def send_batch(deps: Deps, delivery_ids: list[int], job_id: int) -> dict[str, int]:
    """Send the given rows once each; returns outcome counts. Raises DeliveriesPending when
    some rows must wait (the job is retried later)."""
    unknown = await ledger.settle_orphans(deps, delivery_ids, job_id)
    pending = [d for d in await ledger.load(deps, delivery_ids) if d.state == "pending"]
    now = datetime.now(UTC)
    rows = [d for d in pending if d.not_before is None or d.not_before <= now]
    later = [d.not_before for d in pending if d.not_before is not None and d.not_before > now]
    counts = {"sent": 0, "failed": 0, "unknown": unknown, "retry": len(later), "skipped": 0}
    rendered: dict[str, Rendered] = {}
    for kind, ref in {(d.kind, d.ref) for d in rows}:
        rendered[f"{kind}:{ref}"] = await RENDERERS[kind](deps, ref)
    sections = await watch_lines(deps, rows)
    for d in rows:
        if d.id in sections:
            rendered[f"{d.kind}:{d.ref}"].watch[d.id] = sections[d.id]
    limiter = SendLimiter.from_deps(deps)
    email_rows = [d for d in rows if d.channel == "email"]
    results: list[str] = []
    # Chats in rounds: every destination's first part, then every second part, … so the wait a
    # chat's own window imposes between its parts overlaps with sends to the others.
    remaining = [(d, d.parts_done) for d in rows if d.channel != "email"]
    while remaining:
        outcomes = await asyncio.gather(*(
            _send_next_part(deps, limiter, d, part, rendered[f"{d.kind}:{d.ref}"], job_id)
            for d, part in remaining))
        results += [o for o in outcomes if isinstance(o, str)]
        remaining = [(d, o) for (d, _), o in zip(remaining, outcomes, strict=True)
                     if isinstance(o, int)]
    for (kind, ref, edition), group in _email_groups(email_rows).items():
        results += await _send_emails(deps, limiter, group, rendered[f"{kind}:{ref}"], edition,
                                      job_id)
    for status in results:
        counts[status] += 1
    if counts["retry"]:
        # Rows released with a platform's wait: retry the job no sooner than that.
        due = await deps.db.fetchval(
            "SELECT min(not_before) FROM deliveries WHERE id = ANY($1::bigint[]) "
            "AND state = 'pending'", delivery_ids)
        due_in = max(0.0, (due - datetime.now(UTC)).total_seconds()) if due else 0.0
        raise DeliveriesPending(f"{counts['retry']} deliveries will be retried", due_in)
    return counts


def _email_groups(rows: list[Delivery]) -> dict[tuple[str, str, str], list[Delivery]]:
    groups: dict[tuple[str, str, str], list[Delivery]] = {}
    for d in rows:
        groups.setdefault((d.kind, d.ref, d.edition), []).append(d)
    return groups


async def _finish(deps: Deps, deliveries: list[Delivery], outcome: SendOutcome) -> str:
    ids = [d.id for d in deliveries]
    if outcome.status == "sent":
        await ledger.mark_sent(deps, ids)
    elif outcome.status == "retry":
        await ledger.release(deps, ids, reason=outcome.reason, after_s=outcome.retry_after_s)
    elif outcome.status == "unknown":
        await ledger.mark_final(deps, ids, "unknown", outcome.reason)
    elif outcome.status == "permanent":
        await ledger.mark_final(deps, ids, "failed", outcome.reason)
        if outcome.deactivate:
            for d in deliveries:
                if d.kind == "alert":
                    # the chat is gone: its alerts stop too (the account keeps the others)
                    await deps.db.execute(
                        "UPDATE alerts SET active = false, deleted_at = now() WHERE active "
                        "AND channel = $1 AND destination = $2", d.channel, d.destination)
                await unsubscribe(deps, channel=d.channel,  # type: ignore[arg-type]
                                  destination=d.destination, reason=outcome.reason[:200])
                log.info("%s destination deactivated: %s", d.channel, outcome.reason)
                if outcome.moved_to:
                    await _follow_move(deps, d, outcome.moved_to)
    return "failed" if outcome.status == "permanent" else outcome.status


async def _follow_move(deps: Deps, delivery: Delivery, new_destination: str) -> None:
    """A Telegram group that became a supergroup keeps its subscription under the new id; the
    next broadcast (or `report send` again) reaches it there."""
    owner = await deps.db.fetchval("SELECT user_id FROM report_subscribers WHERE id = $1",
                                   delivery.subscriber_id)
    if owner is not None:
        await subscribe(deps, account_id=owner, channel="telegram", destination=new_destination)
        log.info("telegram subscription moved to supergroup %s", new_destination)


# Sends in flight per platform in one process. Bounded so that waiters for the shared
# limiter stay few (each polls Redis when a slot frees); the limiter, not this, sets the rate.
IN_FLIGHT_PER_PLATFORM = 8
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = \
    weakref.WeakKeyDictionary()


def _gate(platform: str) -> asyncio.Semaphore:
    per_loop = _gates.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(platform, asyncio.Semaphore(IN_FLIGHT_PER_PLATFORM))


async def _media(deps: Deps, rendered: Rendered, platform: str) -> bytes | str | None:
    """The chart to send: a reference the platform already hosts, else the PNG itself."""
    if rendered.image_png is None:
        return None
    if platform not in rendered.media:
        cached = await deps.redis.get(deps.keys("media", platform, rendered.image_key))
        if cached:
            rendered.media[platform] = cached.decode()
    return rendered.media.get(platform) or rendered.image_png


async def _remember_media(deps: Deps, rendered: Rendered, platform: str,
                          outcome: SendOutcome) -> None:
    if outcome.media_ref and platform not in rendered.media and rendered.image_png is not None:
        rendered.media[platform] = outcome.media_ref
        # Telegram file_ids do not expire; Discord's CDN links are signed for about a day.
        await deps.redis.set(deps.keys("media", platform, rendered.image_key), outcome.media_ref,
                             ex=3 * 86400 if platform == "telegram" else 6 * 3600)


async def _send_next_part(deps: Deps, limiter: SendLimiter, delivery: Delivery, part: int,
                          rendered: Rendered, job_id: int) -> str | int:
    """Send the next part of a Telegram/Discord delivery: the index of the part after it when
    more remain (the row is pending again), else the row's final status."""
    parts = _telegram_parts(rendered, delivery) if delivery.channel == "telegram" else None
    retries = 0
    waited_s = 0.0

    async def on_slot() -> bool:
        # Claim (pending -> sending) only now, with the slot granted and the request about
        # to leave; between two parts the row is pending again with its progress recorded.
        nonlocal part
        next_part = await ledger.claim_one(deps, delivery.id, job_id)
        if next_part is not None:
            part = next_part
        return next_part is not None

    async with _gate(delivery.channel):
        while True:
            if parts is not None:
                photo = await _media(deps, rendered, "telegram") \
                    if parts[part].kind == "photo" else None
                outcome = await send_telegram(deps, delivery.destination, parts[part],
                                              photo=photo, limiter=limiter, on_slot=on_slot)
            else:
                outcome = await send_discord(deps, delivery.destination,
                                             _discord_message(rendered, delivery),
                                             chart=await _media(deps, rendered, "discord"),
                                             limiter=limiter, on_slot=on_slot)
            if outcome.status == "skipped":
                return "skipped"
            if outcome.status == "sent":
                await _remember_media(deps, rendered, delivery.channel, outcome)
                if parts is not None and part + 1 < len(parts):
                    await ledger.part_done(deps, delivery.id, part + 1)
                    return part + 1
            if outcome.status == "retry" and outcome.rate_limited:
                waited_s += outcome.retry_after_s
                keep_trying = waited_s <= RATE_LIMIT_BUDGET_S
            else:
                retries += outcome.status == "retry"
                keep_trying = retries < RETRIES_IN_JOB
            if outcome.status == "retry" and keep_trying \
                    and outcome.retry_after_s <= MAX_WAIT_IN_JOB_S:
                # Nothing arrived: give the row back, wait for the hold (inside acquire), resend.
                await ledger.release(deps, [delivery.id], reason=outcome.reason, after_s=0)
                continue
            return await _finish(deps, [delivery], outcome)


async def _send_emails(deps: Deps, limiter: SendLimiter, group: list[Delivery],
                       rendered: Rendered, edition: str, job_id: int) -> list[str]:
    settings = deps.settings
    message = rendered.email[edition]
    by_address = {d.destination: d for d in group}
    claimed: list[Delivery] = []
    recipients: list[EmailRecipient] = []
    now = datetime.now(UTC)
    for d in group:
        url = unsubscribe_url(settings, d.destination)
        lines = rendered.watch.get(d.id)
        watch_html, watch_text = render.watchlist_email(lines, now) if lines else ("", "")
        if d.kind != "report":
            # an alert the address's own account set: stopped on the account page (its link
            # is in the message), not by unsubscribing from the daily report
            recipients.append(EmailRecipient(address=d.destination))
            continue
        recipients.append(EmailRecipient(
            address=d.destination, substitutions={
                "%unsubscribe_url%": url, render.WATCHLIST_HTML: watch_html,
                render.WATCHLIST_TEXT: watch_text},
            headers={"List-Unsubscribe": f"<{url}>",
                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}))

    async def on_slot() -> bool:
        ids = set(await ledger.claim(deps, [d.id for d in group], job_id))
        claimed.extend(d for d in group if d.id in ids)
        recipients[:] = [r for r in recipients if by_address[r.address].id in ids]
        return bool(ids)

    outcome = await send_email_batch(deps, message, recipients, limiter=limiter, on_slot=on_slot)
    if outcome.status == "skipped":
        return ["skipped"] * len(group)
    status = await _finish(deps, claimed, outcome)
    return [status] * len(claimed) + ["skipped"] * (len(group) - len(claimed))
