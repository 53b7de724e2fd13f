"""`chainlens serve --workers N`: N web processes on one listening socket, supervised.

The parent process (this module) does what must happen once: it starts or joins the embedded
PostgreSQL and Redis (and restarts them if they die), applies the migrations, and binds
HOST:PORT. It then starts N web processes (multiprocessing's "spawn": fresh interpreters, no
state copied from the parent) that each run `chainlens.serve.serve_forever` on that socket;
the kernel hands each new connection to one of them. The first process (index 0) also runs
what must stay single: Telegram long polling (in webhook mode every process answers the
updates it receives, the first calls `setWebhook`), the Discord gateway, the in-process job
worker and the coin index refresh. Everything else they share lives in PostgreSQL and Redis.

- A web process that exits while the service runs is started again (after 1 s, doubling up
  to 30 s while it keeps dying young); one that fails before any of them ever served means
  the configuration is broken, so everything stops and `serve` exits 1.
- SIGTERM and SIGINT are forwarded to every web process once (SIGTERM: answers in progress
  get `_TERM_GRACE_S`; SIGINT: `_INT_GRACE_S`, a second SIGINT none). The web processes
  are in their own process group, so a Ctrl-C at the terminal reaches them only through the
  parent: once. One still running `STOP_TIMEOUT_S` later is killed.
- A web process whose parent is gone (SIGKILL) stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from chainlens.serve import (
    _TASK_STOP_S,
    _TERM_GRACE_S,
    WebProcess,
    channel_plan,
    watch_embedded,
)
from chainlens.settings import Settings

log = logging.getLogger("chainlens.serve")

STOP_TIMEOUT_S = _TERM_GRACE_S + _TASK_STOP_S + 4.0  # a web process's own grace, then closing
RESTART_DELAY_S = 1.0
RESTART_DELAY_MAX_S = 30.0
HEALTHY_AFTER_S = 30.0  # a web process that served this long starts again after 1 s
LISTEN_BACKLOG = 2048  # uvicorn's default: connections wait here until a process accepts
_POLL_S = 0.2


def bind_listening_socket(settings: Settings) -> socket.socket:
    """HOST:PORT bound and listening, inheritable by the web processes (OSError if taken)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.create_server(
        (settings.host, settings.port), family=family, backlog=LISTEN_BACKLOG
    )
    sock.set_inheritable(True)
    return sock


def web_process_main(
    settings: Settings, process: WebProcess, sock: socket.socket, ready: Connection
) -> None:
    """The entry point of one web process (run by multiprocessing in a fresh interpreter)."""
    os.setpgrp()  # the terminal's Ctrl-C reaches the parent only; it forwards it once
    from chainlens.logs import configure_logging
    from chainlens.serve import serve_forever
    from web.server import run_serving

    configure_logging(settings, tag=f"web-{process.index}")

    def started() -> None:
        ready.send(os.getpid())
        ready.close()

    run_serving(serve_forever(settings, process, sockets=[sock], on_started=started))
    # Everything is closed and flushed; skip the interpreter's teardown of the whole import
    # graph (seconds of CPU on a busy machine, during which the supervisor waits).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@dataclass
class _Child:
    index: int
    process: BaseProcess
    ready_pipe: Connection
    started_at: float = field(default_factory=time.monotonic)
    ready: bool = False

    def poll_ready(self) -> bool:
        """True once, when the web process reports that it serves."""
        if self.ready:
            return False
        try:
            if not self.ready_pipe.poll():
                return False
            self.ready_pipe.recv()
        except (EOFError, OSError):
            return False
        self.ready = True
        return True

    def close(self) -> None:
        self.ready_pipe.close()
        self.process.join(0)


class Supervisor:
    """Starts `count` web processes on `sock`, restarts the ones that die, stops them all."""

    def __init__(self, settings: Settings, sock: socket.socket, count: int) -> None:
        self.settings = settings
        self.sock = sock
        self.count = count
        self.context = multiprocessing.get_context("spawn")
        self.children: dict[int, _Child] = {}
        self.restart_at: dict[int, float] = {}
        self.delays: dict[int, float] = {}
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self.ever_served = False
        self._signalled: list[int] = []

    # --- signals -------------------------------------------------------------------------

    def on_signal(self, sig: int) -> None:
        """Forward SIGTERM/SIGINT to every web process (a second SIGINT too: no grace)."""
        name = signal.Signals(sig).name
        if not self.stopping.is_set():
            log.info("%s: stopping %d web processes", name, len(self.children))
        self._signalled.append(sig)
        self.stopping.set()
        for child in self.children.values():
            self._send(child, sig)

    @staticmethod
    def _send(child: _Child, sig: int) -> None:
        pid = child.process.pid
        if pid is not None and child.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    # --- the web processes ---------------------------------------------------------------

    def spawn(self, index: int) -> None:
        reader, writer = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=web_process_main,
            name=f"chainlens-web-{index}",
            args=(self.settings, WebProcess(index=index, count=self.count), self.sock, writer),
        )
        process.start()
        writer.close()  # the child holds its own end; EOF here when it dies
        self.children[index] = _Child(index, process, reader)
        log.info("web process %d started (pid %s)", index, process.pid)

    def check(self) -> None:
        """Note the web processes that became ready, restart (later) the ones that died."""
        now = time.monotonic()
        for index, child in list(self.children.items()):
            if child.poll_ready():
                self.ever_served = True
                self.delays[index] = RESTART_DELAY_S
                log.info("web process %d serving (pid %s)", index, child.process.pid)
                if all(c.ready for c in self.children.values()):
                    log.info(
                        "%d web processes serving on http://%s:%d",
                        len(self.children),
                        self.settings.host,
                        self.settings.port,
                    )
            if child.process.is_alive() or self.stopping.is_set():
                continue
            child.close()
            del self.children[index]
            code = child.process.exitcode
            if not self.ever_served:
                log.error("web process %d exited with %s before serving; stopping", index, code)
                self.exit_code = 1
                self.stopping.set()
                return
            lived = now - child.started_at
            delay = (
                RESTART_DELAY_S
                if lived >= HEALTHY_AFTER_S
                else self.delays.get(index, RESTART_DELAY_S)
            )
            self.delays[index] = min(delay * 2, RESTART_DELAY_MAX_S)
            self.restart_at[index] = now + delay
            log.warning(
                "web process %d (pid %s) exited with %s after %.0f s; restarting it in %.0f s",
                index,
                child.process.pid,
                code,
                lived,
                delay,
            )
        for index, at in list(self.restart_at.items()):
            if now >= at and not self.stopping.is_set():
                del self.restart_at[index]
                self.spawn(index)

    async def run(self) -> int:
        for index in range(self.count):
            self.spawn(index)
        while not self.stopping.is_set():
            self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), _POLL_S)
        await self.stop_all()
        return self.exit_code

    async def stop_all(self) -> None:
        """SIGTERM the web processes no signal reached yet; wait; kill what is left."""
        for child in self.children.values():
            if not self._signalled:
                self._send(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(c.process.is_alive() for c in self.children.values()):
            if time.monotonic() >= deadline:
                for child in self.children.values():
                    if child.process.is_alive():
                        log.warning(
                            "web process %d (pid %s) did not stop within %.0f s; killing it",
                            child.index,
                            child.process.pid,
                            STOP_TIMEOUT_S,
                        )
                        child.process.kill()
                break
            await asyncio.sleep(0.05)
        for child in self.children.values():
            await asyncio.to_thread(child.process.join, 5)
            child.close()
        self.children.clear()


async def _migrate(settings: Settings) -> None:
    from chainlens.deps import create_db_pool
    from chainlens.migrate import apply_migrations

    assert settings.database_url is not None
    db = await create_db_pool(settings.database_url, settings)
    try:
        applied = await apply_migrations(db)
        if applied:
            log.info("migrations applied: %s", ", ".join(applied))
    finally:
        await db.close()


async def supervise(settings: Settings) -> int:
    """Run `settings.web_workers` web processes until SIGTERM/SIGINT; the exit code."""
    from chainlens.deps import start_embedded

    loop = asyncio.get_running_loop()
    try:  # first: a second `serve` on a taken port exits at once, touching nothing
        sock = bind_listening_socket(settings)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        return 1
    async with AsyncExitStack() as stack:
        stack.callback(sock.close)
        embedded_pg, embedded_redis = start_embedded(settings, stack)
        # The web processes reach the embedded servers by URL; this process watches them.
        settings = settings.model_copy(
            update={
                "database_url": settings.database_url or (embedded_pg.url if embedded_pg else None),
                "redis_url": settings.redis_url or (embedded_redis.url if embedded_redis else None),
            }
        )
        await _migrate(settings)
        for line in channel_plan(settings):
            log.info("channel %s", line)
        supervisor = Supervisor(settings, sock, settings.web_workers)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, supervisor.on_signal, sig)
            stack.callback(loop.remove_signal_handler, sig)
        watchdogs = [
            asyncio.create_task(watch_embedded(name, server), name=f"{name}-watchdog")
            for name, server in (("PostgreSQL", embedded_pg), ("Redis", embedded_redis))
        ]
        try:
            return await supervisor.run()
        finally:
            for task in watchdogs:
                task.cancel()
            await asyncio.gather(*watchdogs, return_exceptions=True)
