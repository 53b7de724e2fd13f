"""The job queue: one procrastinate app (PostgreSQL-backed) for everything scheduled or fanned out.

Queues: `reports` (build, broadcast), `telegram`, `discord`, `email` (one send batch per
job), `default` (cache warming, housekeeping). Periodic tasks are deferred once per period by
the database however many workers run (procrastinate's unique periodic defers).

The app is created at import without a connection; `open_queue(deps)` opens it on a psycopg
pool of its own for the life of a process (worker, `serve`, CLI). Jobs reach the process's
`Deps` through the worker's `additional_context` (`job_deps(context)`).

Procrastinate does not re-run a job whose worker died; `recover_stalled_jobs` puts such jobs
back in the queue (run by every worker at start and then every few heartbeats). A re-run
send job finds the rows its dead attempt left in `sending` and marks them `unknown`
(reports/ledger.py): they may have arrived, so they are never sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import procrastinate
from procrastinate.job_context import JobContext

from chainlens.deps import Deps

log = logging.getLogger(__name__)

QUEUES: tuple[str, ...] = ("reports", "telegram", "discord", "email", "default")
COIN_INDEX_CRON = "17 3 * * *"  # daily, off the hour
QUOTES_CRON = "*/5 * * * *"  # the hot set's batched market quotes (tools/quotes.py)
PURGE_CRON = "41 4 * * *"  # idle anonymous accounts (billing/anonymous.py)
STARS_CRON = "*/5 * * * *"  # Telegram Stars periods that ran out (billing/telegram_stars.py)
TASK_MODULES = ["reports.jobs"]

app = procrastinate.App(connector=procrastinate.PsycopgConnector(), import_paths=TASK_MODULES)


def database_url(deps: Deps) -> str:
    if deps.settings.database_url:
        return deps.settings.database_url
    assert deps.embedded_postgres is not None
    return deps.embedded_postgres.url


async def apply_queue_schema(conn: asyncpg.Connection) -> bool:
    """Create procrastinate's tables once (True when this call created them).

    Called by `chainlens migrate` under its advisory lock. A later procrastinate major
    version ships SQL migrations of its own; apply those before upgrading the package."""
    exists = await conn.fetchval("SELECT to_regclass('public.procrastinate_jobs') IS NOT NULL")
    if exists:
        return False
    async with conn.transaction():
        await conn.execute(app.schema_manager.get_schema())
    log.info("applied the job queue schema (procrastinate %s)", procrastinate.__version__)
    return True


@contextlib.asynccontextmanager
async def open_queue(deps: Deps, *, max_size: int = 4) -> AsyncIterator[procrastinate.App]:
    """Open the queue app on a psycopg pool of its own; close it afterwards."""
    connector = procrastinate.PsycopgConnector(
        conninfo=database_url(deps), min_size=1, max_size=max_size, timeout=10
    )
    with app.replace_connector(connector):
        async with app.open_async():
            yield app


def job_deps(context: JobContext) -> Deps:
    deps: Deps = context.additional_context["deps"]
    return deps


def register_periodic(deps: Deps) -> None:
    """Register the scheduled jobs with the cron lines from settings (idempotent)."""
    from reports import jobs

    settings = deps.settings
    registry = app.periodic_registry
    for task, cron, periodic_id in (
        (jobs.build_daily_report, settings.report_cron, "daily"),
        (jobs.warm_cache, settings.cache_warm_cron, "warm"),
        (jobs.refresh_coin_index, COIN_INDEX_CRON, "index"),
        (jobs.refresh_quotes, QUOTES_CRON, "quotes"),
        (jobs.purge_anonymous, PURGE_CRON, "purge-anonymous"),
        (jobs.expire_stars, STARS_CRON, "stars"),
        (jobs.apply_retention, settings.retention_cron, "retention"),
        (jobs.evaluate_alerts, settings.alert_cron, "alerts"),
        (jobs.evaluate_slow_alerts, settings.alert_slow_cron, "alerts-slow"),
    ):
        registry.periodic_tasks.pop((task.name, periodic_id), None)
        registry.register_task(task=task, cron=cron, periodic_id=periodic_id, configure_kwargs={})


def stalled_after_s(deps: Deps) -> float:
    return deps.settings.worker_heartbeat_s * 3


async def recover_stalled_jobs(deps: Deps) -> int:
    """Put back in the queue the jobs whose worker stopped sending heartbeats."""
    seconds = stalled_after_s(deps)
    manager = app.job_manager
    await manager.prune_stalled_workers(seconds)
    stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=seconds)
    for job in stalled:
        log.warning(
            "job %s (%s) was left running by a dead worker; queueing it again",
            job.id,
            job.task_name,
        )
        await manager.retry_job(job, retry_at=datetime.now(UTC))
    return len(list(stalled))


async def _recover_loop(deps: Deps) -> None:
    while True:
        try:
            await recover_stalled_jobs(deps)
        except Exception:  # a database blip must not stop the worker; logged and retried
            log.exception("stalled-job recovery failed")
        await asyncio.sleep(stalled_after_s(deps))


async def run_worker(
    deps: Deps,
    *,
    queues: Sequence[str] = QUEUES,
    wait: bool = True,
    concurrency: int | None = None,
    name: str | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run a worker on an opened app until stopped (or, with wait=False, until idle)."""
    register_periodic(deps)
    heartbeat = deps.settings.worker_heartbeat_s
    options: dict[str, Any] = dict(
        queues=list(queues),
        wait=wait,
        name=name,
        concurrency=concurrency or deps.settings.worker_concurrency,
        additional_context={"deps": deps},
        install_signal_handlers=install_signal_handlers,
        update_heartbeat_interval=heartbeat,
        stalled_worker_timeout=stalled_after_s(deps),
        fetch_job_polling_interval=min(5.0, heartbeat),
        delete_jobs="successful",
        shutdown_graceful_timeout=deps.settings.send_timeout_s + 5,
    )
    recovery = asyncio.create_task(_recover_loop(deps), name="job-recovery") if wait else None
    try:
        if not wait:
            await recover_stalled_jobs(deps)
        await app.run_worker_async(**options)
    finally:
        if recovery is not None:
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recovery
