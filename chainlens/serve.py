"""`chainlens serve`: the web app and the bots on one set of resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from chainlens.deps import Deps, open_deps
from chainlens.settings import Settings

log = logging.getLogger("chainlens.serve")
_WATCHDOG_INTERVAL_S = 5.0


async def watch_embedded_postgres(deps: Deps) -> None:
    """Restart the embedded PostgreSQL if it dies; the pool reconnects on its own."""
    embedded = deps.embedded_postgres
    if embedded is None:
        return
    while True:
        await asyncio.sleep(_WATCHDOG_INTERVAL_S)
        if not embedded.is_running():
            log.warning("embedded PostgreSQL is not running; restarting it")
            try:
                await asyncio.to_thread(embedded.restart)
                log.info("embedded PostgreSQL is back")
            except Exception:
                log.exception("embedded PostgreSQL failed to restart; will retry")


async def refresh_coin_index(deps: Deps) -> None:
    """Refresh the coin index from CoinGecko once at start (the daily refresh is a job)."""
    from tools.index import refresh_index

    written = await refresh_index(deps)
    if written:
        log.info("coin index refreshed from CoinGecko: %d projects", written)
    else:
        log.info("coin index not refreshed (CoinGecko unreachable); using the bundled index")


def channel_plan(settings: Settings) -> list[str]:
    """One line per channel saying whether it is on and why."""
    lines = [f"web: on at http://{settings.host}:{settings.port}"]
    lines.append("telegram: on" if settings.telegram_bot_token
                 else "telegram: off (TELEGRAM_BOT_TOKEN not set)")
    lines.append("discord: on" if settings.discord_bot_token
                 else "discord: off (DISCORD_BOT_TOKEN not set)")
    lines.append("job worker: on (in-process)" if settings.serve_worker
                 else "job worker: off (SERVE_WORKER=false; run `chainlens worker`)")
    return lines


async def serve_forever(settings: Settings) -> None:
    from web.app import create_app

    async with open_deps(settings) as deps:
        app = create_app(settings, deps=deps)
        for line in channel_plan(settings):
            log.info("channel %s", line)
        config = uvicorn.Config(app, host=settings.host, port=settings.port,
                                log_config=None, proxy_headers=True)
        server = uvicorn.Server(config)
        background: set[asyncio.Task[None]] = set()
        background.add(asyncio.create_task(watch_embedded_postgres(deps), name="pg-watchdog"))
        background.add(asyncio.create_task(refresh_coin_index(deps), name="coin-index"))
        for starter in _bot_starters(settings):
            background.add(asyncio.create_task(starter(deps), name=starter.__name__))
        if settings.serve_worker:
            background.add(asyncio.create_task(run_job_worker(deps), name="job-worker"))
        for task in background:
            task.add_done_callback(_log_task_failure)
        try:
            await server.serve()
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def run_job_worker(deps: Deps) -> None:
    """The job worker in-process (SERVE_WORKER=false for split deployments)."""
    from reports.queue import open_queue, run_worker

    async with open_queue(deps, max_size=deps.settings.worker_concurrency + 2):
        await run_worker(deps, install_signal_handlers=False, name="serve")


def _bot_starters(settings: Settings) -> list:  # type: ignore[type-arg]
    starters = []
    if settings.telegram_bot_token:
        from bots.telegram import run_telegram_bot

        starters.append(run_telegram_bot)
    if settings.discord_bot_token:
        from bots.discord import run_discord_bot

        starters.append(run_discord_bot)
    return starters


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())
