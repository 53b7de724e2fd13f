"""`chainlens serve`: the web app and the bots on one set of resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn

from chainlens.deps import Deps, open_deps
from chainlens.embedded import EmbeddedPostgres, EmbeddedRedis
from chainlens.settings import Settings

log = logging.getLogger("chainlens.serve")
_WATCHDOG_INTERVAL_S = 5.0
_INT_GRACE_S = 0.5  # Ctrl-C: answers in progress get this long to finish
_TERM_GRACE_S = 5.0  # SIGTERM: half of docker's 10 s before it kills
_TASK_STOP_S = 0.8  # bots and background loops, after the web server stopped


async def watch_embedded(name: str, embedded: EmbeddedPostgres | EmbeddedRedis | None) -> None:
    """Restart an embedded server if it dies (under the data directory's lock, so several
    watching processes restart it once); clients reconnect to the same socket on their own."""
    if embedded is None:
        return
    while True:
        await asyncio.sleep(_WATCHDOG_INTERVAL_S)
        if not embedded.is_running():
            log.warning("embedded %s is not running; restarting it", name)
            try:
                await asyncio.to_thread(embedded.restart)
                log.info("embedded %s is back", name)
            except Exception:
                log.exception("embedded %s failed to restart; will retry", name)


async def watch_embedded_postgres(deps: Deps) -> None:
    """Restart the embedded PostgreSQL if it dies; the pool reconnects on its own."""
    await watch_embedded("PostgreSQL", deps.embedded_postgres)


async def watch_embedded_redis(deps: Deps) -> None:
    """Restart the embedded Redis if it dies; the client reconnects on its own."""
    await watch_embedded("Redis", deps.embedded_redis)


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
    workers = settings.web_workers
    processes = f"{workers} web processes" if workers > 1 else "1 web process"
    lines = [f"web: on at http://{settings.host}:{settings.port} ({processes})"]
    if not settings.telegram_bot_token:
        lines.append("telegram: off (TELEGRAM_BOT_TOKEN not set)")
    elif settings.telegram_webhook_url:
        lines.append(f"telegram: on (webhook {settings.telegram_webhook_url})")
    else:
        lines.append("telegram: on (long polling)")
    lines.append(
        "discord: on" if settings.discord_bot_token else "discord: off (DISCORD_BOT_TOKEN not set)"
    )
    lines.append(
        "job worker: on (in-process)"
        if settings.serve_worker
        else "job worker: off (SERVE_WORKER=false; run `chainlens worker`)"
    )
    return lines


@dataclass(frozen=True, slots=True)
class WebProcess:
    """Which of a `serve`'s web processes this one is. The first (index 0) runs what must
    stay single: Telegram long polling (or the webhook's registration), the Discord gateway,
    the in-process job worker and the coin index refresh. With `count > 1` the parent applied
    the migrations and holds the embedded servers (`chainlens.supervisor`)."""

    index: int = 0
    count: int = 1

    @property
    def first(self) -> bool:
        return self.index == 0

    @property
    def alone(self) -> bool:
        return self.count == 1


def web_server(app: Any, settings: Settings) -> uvicorn.Server:
    """The HTTP server `serve` runs the app with, in each web process (the one place the
    server is chosen: `serve_forever` only calls `serve(sockets)` and reads `started`)."""
    from web.server import server_config

    # X-Forwarded-For is read by web.auth.client_ip from FORWARDED_ALLOW_IPS proxies only.
    config = server_config(
        app, settings, log_config=None, proxy_headers=False, timeout_graceful_shutdown=_TERM_GRACE_S
    )
    return _Server(config)


async def serve_forever(
    settings: Settings,
    process: WebProcess | None = None,
    *,
    sockets: list[socket.socket] | None = None,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Run one web process until SIGTERM/SIGINT: the app on `sockets` (a listening socket the
    parent shares with its siblings) or on HOST:PORT, plus the tasks `process` owns."""
    from web.app import create_app

    process = process or WebProcess()
    async with open_deps(settings, migrate=process.alone) as deps:
        app = create_app(settings, deps=deps)
        if process.alone:
            for line in channel_plan(settings):
                log.info("channel %s", line)
        server = web_server(app, settings)
        background: set[asyncio.Task[None]] = set()
        background.add(asyncio.create_task(watch_embedded_postgres(deps), name="pg-watchdog"))
        background.add(asyncio.create_task(watch_embedded_redis(deps), name="redis-watchdog"))
        if process.first:
            background.add(asyncio.create_task(refresh_coin_index(deps), name="coin-index"))
        if settings.telegram_bot_token and (process.first or settings.telegram_webhook_url):
            from bots.telegram import build_application, run_telegram_bot

            # The webhook route (POST /api/telegram/webhook) feeds this application's queue:
            # every web process answers the updates it receives; the first registers.
            telegram = build_application(deps)
            if settings.telegram_webhook_url:
                app.state.telegram = telegram
            background.add(
                asyncio.create_task(
                    run_telegram_bot(deps, telegram, register=process.first),
                    name="run_telegram_bot",
                )
            )
        if process.first:
            for starter in _bot_starters(settings):
                background.add(asyncio.create_task(starter(deps), name=starter.__name__))
        if settings.serve_worker and process.first:
            background.add(asyncio.create_task(run_job_worker(deps, server), name="job-worker"))
        if on_started is not None:
            background.add(asyncio.create_task(_when_started(server, on_started), name="started"))
        if not process.alone:
            background.add(asyncio.create_task(_exit_with_parent(server), name="parent-watch"))
        for task in background:
            task.add_done_callback(_log_task_failure)
        try:
            await server.serve(sockets=sockets)
        finally:
            await stop_tasks(background, _TASK_STOP_S)


async def _when_started(server: uvicorn.Server, callback: Callable[[], None]) -> None:
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.02)
    callback()


async def _exit_with_parent(server: uvicorn.Server) -> None:
    """A web process whose supervisor died (SIGKILL) stops instead of serving unsupervised."""
    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110 - polled: no event tells a parent's death
        await asyncio.sleep(1.0)
    log.warning("the supervising process %d is gone; stopping", parent)
    server.should_exit = True


async def stop_tasks(tasks: set[asyncio.Task[None]], timeout_s: float) -> None:
    """Cancel `tasks` and wait for them at most `timeout_s` (a bot closing its connection
    must not hold the process up); the ones still running are named in a warning."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    if pending:
        log.warning(
            "did not stop within %.1fs: %s",
            timeout_s,
            ", ".join(sorted(t.get_name() for t in pending)),
        )


class _Server(uvicorn.Server):
    """uvicorn's server, stopping quickly on Ctrl-C.

    SIGTERM (docker stop, systemd) lets answers in progress finish for `_TERM_GRACE_S`;
    SIGINT (Ctrl-C at a terminal) gives them `_INT_GRACE_S`, a second Ctrl-C none. Unlike
    uvicorn's own, the signals are not re-raised after the server stops: `serve_forever`
    then closes every resource and the command exits normally.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGINT:
            # uvicorn annotates int but hands the value to asyncio.wait_for (any float)
            self.config.timeout_graceful_shutdown = _INT_GRACE_S  # type: ignore[assignment]
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


async def run_job_worker(deps: Deps, server: uvicorn.Server | None = None) -> None:
    """The job worker in-process (SERVE_WORKER=false for split deployments).

    It starts once the web server is listening: a `serve` that cannot bind its port (another
    one runs there) exits at once without having opened the job queue's connections."""
    from reports.queue import open_queue, run_worker

    while server is not None and not server.started:  # noqa: ASYNC110 - uvicorn has no event
        await asyncio.sleep(0.05)
    async with open_queue(deps, max_size=deps.settings.worker_concurrency + 2):
        await run_worker(deps, install_signal_handlers=False, name="serve")


def _bot_starters(settings: Settings) -> list[Callable[[Deps], Coroutine[Any, Any, None]]]:
    starters: list[Callable[[Deps], Coroutine[Any, Any, None]]] = []
    if settings.discord_bot_token:
        from bots.discord import run_discord_bot

        starters.append(run_discord_bot)
    return starters


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())
