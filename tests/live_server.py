"""The real app served by uvicorn on a loopback port, in its own thread and event loop.

For clients that block (schemathesis, a browser, a load generator): they cannot share the
test's event loop, so the server gets its own loop, its own `Deps` and the same database.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import uvicorn

from chainlens.deps import open_deps
from chainlens.settings import Settings
from tests.fake_telegram import _free_port


class LiveServer:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        configure: Any = None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.configure = configure  # called with the server's Deps before it starts serving
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from web.app import create_app

        async with open_deps(self.settings, http_transport=self.transport) as deps:
            if self.configure is not None:
                deps = self.configure(deps)
            app = create_app(self.settings, deps=deps)
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
            self._server = uvicorn.Server(config)
            serving = asyncio.create_task(self._server.serve())
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.01)
            self._ready.set()
            await serving

    def start(self) -> LiveServer:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise RuntimeError("live server failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(15)
