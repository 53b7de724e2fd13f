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


_INDEX_REFRESH_S = 24 * 3600


async def refresh_coin_index(deps: Deps) -> None:
    """Refresh the coin index from CoinGecko at start and then daily (keeps the bundle honest)."""
    from tools.index import refresh_index

    while True:
        written = await refresh_index(deps)
        if written:
            log.info("coin index refreshed from CoinGecko: %d projects", written)
        else:
            log.info("coin index not refreshed (CoinGecko unreachable); using the bundled index")
        await asyncio.sleep(_INDEX_REFRESH_S)


def channel_plan(settings: Settings) -> list[str]:
    """One line per channel saying whether it is on and why."""
    lines = [f"web: on at http://{settings.host}:{settings.port}"]
    if not settings.telegram_bot_token:
        lines.append("telegram: off (TELEGRAM_BOT_TOKEN not set)")
    elif settings.telegram_webhook_url:
        lines.append(f"telegram: on (webhook {settings.telegram_webhook_url})")
    else:
        lines.append("telegram: on (long polling)")
    lines.append("discord: on" if settings.discord_bot_token
                 else "discord: off (DISCORD_BOT_TOKEN not set)")
    return lines


async def serve_forever(settings: Settings) -> None:
    from web.app import create_app
    from web.server import server_config

    async with open_deps(settings) as deps:
        app = create_app(settings, deps=deps)
        for line in channel_plan(settings):
            log.info("channel %s", line)
        # X-Forwarded-For is read by web.auth.client_ip from FORWARDED_ALLOW_IPS proxies only.
        config = server_config(app, settings, log_config=None, proxy_headers=False)
        server = uvicorn.Server(config)
        background: set[asyncio.Task[None]] = set()
        background.add(asyncio.create_task(watch_embedded_postgres(deps), name="pg-watchdog"))
        background.add(asyncio.create_task(refresh_coin_index(deps), name="coin-index"))
        if settings.telegram_bot_token:
            from bots.telegram import build_application, run_telegram_bot

            # The webhook route (POST /api/telegram/webhook) feeds this application's queue.
            telegram = build_application(deps)
            if settings.telegram_webhook_url:
                app.state.telegram = telegram
            background.add(asyncio.create_task(run_telegram_bot(deps, telegram),
                                               name="run_telegram_bot"))
        for starter in _bot_starters(settings):
            background.add(asyncio.create_task(starter(deps), name=starter.__name__))
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


def _bot_starters(settings: Settings) -> list:  # type: ignore[type-arg]
    starters = []
    if settings.discord_bot_token:
        from bots.discord import run_discord_bot

        starters.append(run_discord_bot)
    return starters


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())
