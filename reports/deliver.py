"""Broadcast: fan the report out into ledger rows and send jobs, and send one batch of rows.

`broadcast_report` (the job the schedule and `chainlens report send` run) adds a pending row
for every receiving subscriber and defers send jobs for every pending row, in batches on the
platform's queue. Running it twice is harmless: rows are unique, and a row is claimed by
exactly one job right before its request leaves.

`send_batch` sends what a job was given: Telegram and Discord one destination at a time
(several in flight, all paced by the shared limiter), e-mail as one SendGrid request per batch.
A 429 is waited out and retried inside the job a few times; what is still not sent when the
job ends stays pending and the job fails, so procrastinate retries it with backoff.

Each row carries its language (fixed when the row is created). A message is rendered once
per (kind, ref, version, language) in this process and each channel/edition of it on first
use (`rendering`), so every send job of a run shares one rendering per language.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from procrastinate.types import JSONValue

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
from chainlens.i18n import ENGLISH, Localizer, localizer
from chainlens.limiter import SendLimiter
from chainlens.redis_reply import as_bytes
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


Edition = str  # "headline" | "full"


class Rendered:
    """One message (a report date or an alert firing) in one language. Each channel's form of
    each edition is rendered on first use and kept, so a send run renders it once however many
    destinations receive it (see `rendering`)."""

    def __init__(
        self,
        language: str,
        *,
        telegram: Callable[[Edition], list[TelegramPart]],
        discord: Callable[[Edition], DiscordMessage],
        email: Callable[[Edition], EmailMessage],
        image_png: bytes | None = None,
    ) -> None:
        self.language = language
        self.image_png = image_png
        self.media: dict[str, str] = {}  # platform -> hosted copy of the image
        self._telegram, self._discord, self._email = telegram, discord, email
        self._telegram_done: dict[Edition, list[TelegramPart]] = {}
        self._discord_done: dict[Edition, DiscordMessage] = {}
        self._email_done: dict[Edition, EmailMessage] = {}

    def telegram(self, edition: Edition) -> list[TelegramPart]:
        if edition not in self._telegram_done:
            _count_render()
            self._telegram_done[edition] = self._telegram(edition)
        return self._telegram_done[edition]

    def discord(self, edition: Edition) -> DiscordMessage:
        if edition not in self._discord_done:
            _count_render()
            self._discord_done[edition] = self._discord(edition)
        return self._discord_done[edition]

    def email(self, edition: Edition) -> EmailMessage:
        if edition not in self._email_done:
            _count_render()
            self._email_done[edition] = self._email(edition)
        return self._email_done[edition]

    @property
    def image_key(self) -> str:
        return hashlib.sha1(self.image_png or b"", usedforsecurity=False).hexdigest()[:20]


_renders = 0


def _count_render() -> None:
    global _renders  # noqa: PLW0603 - one process-wide counter, read by renders_done()
    _renders += 1


def renders_done() -> int:
    """Channel renderings made by this process so far (each (message, language, channel,
    edition) once while it stays cached): what a send run costs in rendering."""
    return _renders


# (kind, ref, version, language) -> the rendering; a rebuilt report has a new version
RENDER_CACHE_SIZE = 32
_cache: OrderedDict[tuple[str, str, str, str], Rendered] = OrderedDict()


async def rendering(deps: Deps, kind: str, ref: str, language: str) -> Rendered:
    """The message in a language, from this process's cache when the same version was rendered
    before (every send job of a run shares it)."""
    loc = localizer(language)
    version = await VERSIONS[kind](deps, ref)
    if version is None:  # not worth keeping (an alert firing goes to one destination)
        return await RENDERERS[kind](deps, ref, loc)
    key = (kind, ref, version, loc.language)
    found = _cache.get(key)
    if found is None:
        made = await RENDERERS[kind](deps, ref, loc)
        found = _cache.setdefault(key, made)  # another job may have made it meanwhile
        while len(_cache) > RENDER_CACHE_SIZE:
            _cache.popitem(last=False)
    _cache.move_to_end(key)
    return found


async def _report_version(deps: Deps, ref: str) -> str | None:
    row = await deps.db.fetchrow(
        "SELECT builds, updated_at FROM daily_reports WHERE report_date = $1",
        date.fromisoformat(ref),
    )
    if row is None:
        raise ReportMissing(f"no report built for {ref}")
    return f"{row['builds']}@{row['updated_at'].isoformat()}"


async def _alert_version(deps: Deps, ref: str) -> str | None:
    return None


async def render_report(deps: Deps, ref: str, loc: Localizer = ENGLISH) -> Rendered:
    stored = await get_report(deps, date.fromisoformat(ref))
    if stored is None:
        raise ReportMissing(f"no report built for {ref}")
    content = stored.content
    base = str(deps.settings.public_base_url).rstrip("/")
    full_url = render.report_url(base, content)
    chart_url = f"{base}/reports/{ref}/chart.png" if stored.chart_png else None
    return Rendered(
        loc.language,
        image_png=stored.chart_png,
        telegram=lambda e: render.telegram_parts(content, _edition(e), full_url=full_url, loc=loc),
        discord=lambda e: render.discord_message(content, _edition(e), full_url=full_url, loc=loc),
        email=lambda e: render.email_message(
            content, _edition(e), full_url=full_url, chart_url=chart_url, loc=loc
        ),
    )


def _edition(edition: str) -> render.Edition:
    return "headline" if edition == "headline" else "full"


class AlertMissing(LookupError):
    """There is no alert event with that id."""


async def render_alert(deps: Deps, ref: str, loc: Localizer = ENGLISH) -> Rendered:
    """One alert firing (ref = alert event id): the figure, its source and time, and Research /
    Chart buttons; the same message for both editions."""
    from reports import alerts

    firing = await alerts.load_firing(deps, int(ref))
    if firing is None:
        raise AlertMissing(f"no alert event {ref}")
    base = str(deps.settings.public_base_url).rstrip("/")

    def telegram(_: Edition) -> list[TelegramPart]:
        return [
            TelegramPart(
                "text",
                alerts.telegram_html(firing, loc),
                reply_markup=alerts.telegram_markup(firing, loc),
            )
        ]

    def discord(_: Edition) -> DiscordMessage:
        embeds, components = alerts.discord_payload(firing, loc)
        return DiscordMessage(embeds=embeds, components=components)

    def email(_: Edition) -> EmailMessage:
        subject, body, text = alerts.email_parts(firing, base, loc)
        return EmailMessage(subject=subject, html=body, text=text)

    return Rendered(loc.language, telegram=telegram, discord=discord, email=email)


# kind -> (deps, ref, localizer) -> the message; kind -> (deps, ref) -> its version (None: the
# message is rendered for each send job, not cached)
RENDERERS: dict[str, Callable[[Deps, str, Localizer], Awaitable[Rendered]]] = {
    "report": render_report,
    "alert": render_alert,
}
VERSIONS: dict[str, Callable[[Deps, str], Awaitable[str | None]]] = {
    "report": _report_version,
    "alert": _alert_version,
}


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
    log.info(
        "report %s: %d new deliveries, %d pending in %d send jobs",
        report_date,
        added,
        pending,
        jobs,
    )
    return BroadcastSummary(added=added, jobs=jobs, pending=pending)


async def refresh_watched_quotes(deps: Deps) -> int:
    """Quotes for every coin on a receiving subscriber's watchlist, batched (one CoinGecko call
    per 250 coins), kept in Redis for the send jobs' "Your watchlist" sections."""
    from tools.quotes import refresh_quotes

    rows = await deps.db.fetch(
        "SELECT DISTINCT w.project_id FROM watchlist_items w JOIN report_subscribers s "
        "ON s.user_id = w.user_id WHERE s.active AND s.confirmed_at IS NOT NULL "
        "ORDER BY w.project_id"
    )
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
        "WHERE d.id = ANY($1::bigint[]) ORDER BY d.id, w.added_at, w.project_id",
        ids,
    )
    coins = sorted({r["project_id"] for r in found})
    quotes: dict[str, dict[str, object]] = {}
    if coins:
        raw = await best_effort.attempt(
            deps.redis,
            "watchlist quotes",
            lambda: mget(deps.redis, [deps.keys("quote", c) for c in coins]),
            None,
        )
        for coin, value in zip(coins, raw or [None] * len(coins), strict=True):
            if value:
                quotes[coin] = json.loads(value)
    out: dict[int, list[render.WatchLine]] = {}
    for r in found:
        quote = quotes.get(r["project_id"]) or {}
        facts = quote.get("facts") if isinstance(quote.get("facts"), dict) else {}
        assert isinstance(facts, dict)
        price, change = facts.get("price_usd"), facts.get("change_24h_pct")
        out.setdefault(r["id"], []).append(
            render.WatchLine(
                display=r["display"],
                price_usd=float(price) if isinstance(price, int | float) else None,
                change_24h_pct=float(change) if isinstance(change, int | float) else None,
                as_of=iso(quote.get("last_updated")),
            )
        )
    return out


Watch = dict[int, list[render.WatchLine]]  # delivery id -> its subscriber's watchlist lines


def _telegram_parts(rendered: Rendered, delivery: Delivery, watch: Watch) -> list[TelegramPart]:
    parts = rendered.telegram(delivery.edition)
    lines = watch.get(delivery.id)
    if not lines:
        return parts
    return [
        *parts,
        render.watchlist_telegram(lines, datetime.now(UTC), localizer(rendered.language)),
    ]


def _discord_message(rendered: Rendered, delivery: Delivery, watch: Watch) -> DiscordMessage:
    message = rendered.discord(delivery.edition)
    lines = watch.get(delivery.id)
    if not lines:
        return message
    return dataclasses.replace(
        message,
        content=render.watchlist_discord(lines, datetime.now(UTC), localizer(rendered.language)),
    )


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
            batch: list[JSONValue] = list(ids[start : start + size])
            await send_deliveries.configure(queue=channel).defer_async(delivery_ids=batch)
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
    rendered: dict[tuple[str, str, str], Rendered] = {}
    for key in sorted({(d.kind, d.ref, d.language) for d in rows}):
        rendered[key] = await rendering(deps, *key)
    watch = await watch_lines(deps, rows)
    limiter = SendLimiter.from_deps(deps)
    email_rows = [d for d in rows if d.channel == "email"]
    results: list[str] = []
    # Chats in rounds: every destination's first part, then every second part, … so the wait a
    # chat's own window imposes between its parts overlaps with sends to the others.
    remaining = [(d, d.parts_done) for d in rows if d.channel != "email"]
    while remaining:
        outcomes = await asyncio.gather(
            *(
                _send_next_part(
                    deps, limiter, d, part, rendered[(d.kind, d.ref, d.language)], watch, job_id
                )
                for d, part in remaining
            )
        )
        results += [o for o in outcomes if isinstance(o, str)]
        remaining = [
            (d, o) for (d, _), o in zip(remaining, outcomes, strict=True) if isinstance(o, int)
        ]
    for (kind, ref, language, edition), group in _email_groups(email_rows).items():
        results += await _send_emails(
            deps, limiter, group, rendered[(kind, ref, language)], edition, watch, job_id
        )
    for status in results:
        counts[status] += 1
    if counts["retry"]:
        # Rows released with a platform's wait: retry the job no sooner than that.
        due = await deps.db.fetchval(
            "SELECT min(not_before) FROM deliveries WHERE id = ANY($1::bigint[]) "
            "AND state = 'pending'",
            delivery_ids,
        )
        due_in = max(0.0, (due - datetime.now(UTC)).total_seconds()) if due else 0.0
        raise DeliveriesPending(f"{counts['retry']} deliveries will be retried", due_in)
    return counts


def _email_groups(rows: list[Delivery]) -> dict[tuple[str, str, str, str], list[Delivery]]:
    """One SendGrid request per message, language and edition."""
    groups: dict[tuple[str, str, str, str], list[Delivery]] = {}
    for d in rows:
        groups.setdefault((d.kind, d.ref, d.language, d.edition), []).append(d)
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
                        "AND channel = $1 AND destination = $2",
                        d.channel,
                        d.destination,
                    )
                await unsubscribe(
                    deps,
                    channel=d.channel,  # type: ignore[arg-type]
                    destination=d.destination,
                    reason=outcome.reason[:200],
                )
                log.info("%s destination deactivated: %s", d.channel, outcome.reason)
                if outcome.moved_to:
                    await _follow_move(deps, d, outcome.moved_to)
    return "failed" if outcome.status == "permanent" else outcome.status


async def _follow_move(deps: Deps, delivery: Delivery, new_destination: str) -> None:
    """A Telegram group that became a supergroup keeps its subscription under the new id; the
    next broadcast (or `report send` again) reaches it there."""
    old = await deps.db.fetchrow(
        "SELECT user_id, language FROM report_subscribers WHERE id = $1", delivery.subscriber_id
    )
    if old is not None:
        await subscribe(
            deps,
            account_id=old["user_id"],
            channel="telegram",
            destination=new_destination,
            language=old["language"],
        )
        log.info("telegram subscription moved to supergroup %s", new_destination)


# Sends in flight per platform in one process. Bounded so that waiters for the shared
# limiter stay few (each polls Redis when a slot frees); the limiter, not this, sets the rate.
IN_FLIGHT_PER_PLATFORM = 8
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


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
            rendered.media[platform] = as_bytes(cached).decode()
    return rendered.media.get(platform) or rendered.image_png


async def _remember_media(
    deps: Deps, rendered: Rendered, platform: str, outcome: SendOutcome
) -> None:
    if outcome.media_ref and platform not in rendered.media and rendered.image_png is not None:
        rendered.media[platform] = outcome.media_ref
        # Telegram file_ids do not expire; Discord's CDN links are signed for about a day.
        await deps.redis.set(
            deps.keys("media", platform, rendered.image_key),
            outcome.media_ref,
            ex=3 * 86400 if platform == "telegram" else 6 * 3600,
        )


async def _send_next_part(
    deps: Deps,
    limiter: SendLimiter,
    delivery: Delivery,
    part: int,
    rendered: Rendered,
    watch: Watch,
    job_id: int,
) -> str | int:
    """Send the next part of a Telegram/Discord delivery: the index of the part after it when
    more remain (the row is pending again), else the row's final status."""
    parts = _telegram_parts(rendered, delivery, watch) if delivery.channel == "telegram" else None
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
                photo = (
                    await _media(deps, rendered, "telegram")
                    if parts[part].kind == "photo"
                    else None
                )
                outcome = await send_telegram(
                    deps,
                    delivery.destination,
                    parts[part],
                    photo=photo,
                    limiter=limiter,
                    on_slot=on_slot,
                )
            else:
                outcome = await send_discord(
                    deps,
                    delivery.destination,
                    _discord_message(rendered, delivery, watch),
                    chart=await _media(deps, rendered, "discord"),
                    limiter=limiter,
                    on_slot=on_slot,
                )
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
            if (
                outcome.status == "retry"
                and keep_trying
                and outcome.retry_after_s <= MAX_WAIT_IN_JOB_S
            ):
                # Nothing arrived: give the row back, wait for the hold (inside acquire), resend.
                await ledger.release(deps, [delivery.id], reason=outcome.reason, after_s=0)
                continue
            return await _finish(deps, [delivery], outcome)


async def _send_emails(
    deps: Deps,
    limiter: SendLimiter,
    group: list[Delivery],
    rendered: Rendered,
    edition: str,
    watch: Watch,
    job_id: int,
) -> list[str]:
    settings = deps.settings
    message = rendered.email(edition)
    loc = localizer(rendered.language)
    by_address = {d.destination: d for d in group}
    claimed: list[Delivery] = []
    recipients: list[EmailRecipient] = []
    now = datetime.now(UTC)
    for d in group:
        url = unsubscribe_url(settings, d.destination)
        lines = watch.get(d.id)
        watch_html, watch_text = render.watchlist_email(lines, now, loc) if lines else ("", "")
        if d.kind != "report":
            # an alert the address's own account set: stopped on the account page (its link
            # is in the message), not by unsubscribing from the daily report
            recipients.append(EmailRecipient(address=d.destination))
            continue
        recipients.append(
            EmailRecipient(
                address=d.destination,
                substitutions={
                    "%unsubscribe_url%": url,
                    render.WATCHLIST_HTML: watch_html,
                    render.WATCHLIST_TEXT: watch_text,
                },
                headers={
                    "List-Unsubscribe": f"<{url}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            )
        )

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
