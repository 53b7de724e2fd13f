"""Run a Starlette app on a loopback port in its own thread and event loop, so the fakes
answer the same whether the client is this test's loop, a worker in it, or a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from tests.fake_telegram import _free_port


@contextlib.contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Serve `app` on 127.0.0.1; yield its base URL; stop it afterwards."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
            backlog=4096,
            limit_concurrency=None,
        )
    )
    started = threading.Event()

    def run() -> None:
        async def main() -> None:
            task = asyncio.create_task(server.serve())
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            started.set()
            await task

        asyncio.run(main())

    thread = threading.Thread(target=run, name=f"fake-{port}", daemon=True)
    thread.start()
    if not started.wait(20):
        raise RuntimeError("fake server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
