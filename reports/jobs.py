"""The queue's tasks: build the daily report, broadcast it, send one batch, warm the cache.

Periodic ones (`build_daily_report`, `warm_cache`) get their cron lines from settings when a
worker starts (`reports.queue.register_periodic`).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from procrastinate import RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.job_context import JobContext
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from reports.queue import app, job_deps

log = logging.getLogger(__name__)


class SendRetry(BaseRetryStrategy):
    """A batch with rows a platform refused for now runs again: when the platform said (a
    429's retry_after beyond the in-job budget), else after 2, 4, 8 … s (at most 5 min) for
    refused connections and 5xx answers; ten attempts."""

    max_attempts = 10

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        from reports.deliver import DeliveriesPending

        if job.attempts >= self.max_attempts:
            return None
        if isinstance(exception, DeliveriesPending) and exception.due_in_s > 0:
            # the platform said when (a 429's retry_after): that, not a growing backoff
            return _retry_in(exception.due_in_s + 0.1)
        return _retry_in(min(300.0, 2.0 ** (job.attempts + 1)))


def _retry_in(seconds: float) -> RetryDecision:
    # what `RetryDecision(retry_in=...)` computes, for fractional seconds (its type says int)
    return RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=seconds))


SEND_RETRY = SendRetry()


@app.task(name="reports.build_daily_report", queue="reports", pass_context=True)
async def build_daily_report(context: JobContext, timestamp: int) -> None:
    """Build today's report (the schedule's date), store it and defer its broadcast."""
    from reports.build import build_report
    from reports.store import save_report

    deps = job_deps(context)
    report_date = datetime.fromtimestamp(timestamp, UTC).date()
    content, chart = await build_report(deps, report_date)
    stored = await save_report(deps, content, chart)
    log.info(
        "daily report %s built (%d projects, build #%d)",
        report_date,
        len(content.projects),
        stored.builds,
    )
    await defer_broadcast(report_date)


async def defer_broadcast(report_date: date) -> bool:
    """Queue the broadcast of a built report; False when one is already queued."""
    try:
        await broadcast.configure(queueing_lock=f"broadcast:{report_date.isoformat()}").defer_async(
            report_date=report_date.isoformat()
        )
    except AlreadyEnqueued:
        return False
    return True


@app.task(
    name="reports.broadcast",
    queue="reports",
    pass_context=True,
    retry=RetryStrategy(max_attempts=5, exponential_wait=3),
)
async def broadcast(context: JobContext, report_date: str) -> None:
    from reports.deliver import broadcast_report

    await broadcast_report(job_deps(context), date.fromisoformat(report_date))


@app.task(name="deliveries.send", queue="default", pass_context=True, retry=SEND_RETRY)
async def send_deliveries(context: JobContext, delivery_ids: list[int]) -> None:
    """Send one batch of ledger rows (the queue is the platform's: telegram, discord, email)."""
    from reports.deliver import send_batch

    assert context.job.id is not None
    counts = await send_batch(job_deps(context), delivery_ids, context.job.id)
    log.info("send batch of %d: %s", len(delivery_ids), counts)


@app.task(name="tools.warm_cache", queue="default", pass_context=True)
async def warm_cache(context: JobContext, timestamp: int) -> None:
    """Keep the most asked-about and trending projects hot (was `chainlens cache warm`)."""
    from tools.warm import warm_cache as warm

    deps = job_deps(context)
    warmed = await warm(deps, limit=deps.settings.cache_warm_limit)
    log.info("cache warmed for %d project(s)", len(warmed))


@app.task(name="tools.refresh_quotes", queue="default", pass_context=True)
async def refresh_quotes(context: JobContext, timestamp: int) -> None:
    """Every 5 minutes: the hot set's market quotes in one batched CoinGecko call, so answers'
    market figures stay fresh within the keyless budget (tools/quotes.py)."""
    from tools.warm import refresh_hot_quotes

    stored = await refresh_hot_quotes(job_deps(context))
    log.info("quotes refreshed for %d coin(s)", stored)


@app.task(name="billing.purge_anonymous", queue="default", pass_context=True)
async def purge_anonymous(context: JobContext, timestamp: int) -> None:
    """Daily: anonymous web accounts idle for 30 days, with nothing attached, are deleted."""
    from billing.anonymous import purge_anonymous_accounts

    purged = await purge_anonymous_accounts(job_deps(context))
    log.info("purged %d idle anonymous account(s)", purged)


@app.task(name="billing.apply_retention", queue="default", pass_context=True)
async def apply_retention(context: JobContext, timestamp: int) -> None:
    """Daily: raw usage/query rows past RETENTION_DAYS are folded into daily aggregates."""
    from billing.retention import apply_retention as run

    result = await run(job_deps(context))
    log.info("%s", result.summary())


@app.task(name="billing.expire_stars", queue="default", pass_context=True)
async def expire_stars(context: JobContext, timestamp: int) -> None:
    """Every 5 minutes: Telegram Stars subscriptions whose period ran out stop granting Pro."""
    from billing.telegram_stars import expire_stars_subscriptions

    ended = await expire_stars_subscriptions(job_deps(context))
    if ended:
        log.info("ended %d expired Telegram Stars subscription(s)", ended)


@app.task(name="tools.refresh_coin_index", queue="default", pass_context=True)
async def refresh_coin_index(context: JobContext, timestamp: int) -> None:
    """Daily: the coin index from CoinGecko (project resolution), kept honest."""
    from tools.index import refresh_index

    written = await refresh_index(job_deps(context))
    log.info(
        "coin index refresh: %s", f"{written} projects" if written else "CoinGecko unreachable"
    )


@app.task(name="alerts.evaluate", queue="default", pass_context=True)
async def evaluate_alerts(context: JobContext, timestamp: int) -> None:
    """Every minute: price and 24 h move alerts, one batched price fetch, one set-based pass
    (reports/alerts.py); firings go out through the delivery ledger."""
    from reports.alerts import evaluate_prices

    summary = await evaluate_prices(job_deps(context))
    log.debug("alerts: %s", summary)


@app.task(name="alerts.evaluate_slow", queue="default", pass_context=True)
async def evaluate_slow_alerts(context: JobContext, timestamp: int) -> None:
    """Every 30 minutes: risk-flag and sentiment alerts from the analysis cache/snapshots."""
    from reports.alerts import evaluate_slow

    fired = await evaluate_slow(job_deps(context))
    if fired:
        log.info("alerts: %d risk/sentiment alert(s) fired", fired)
