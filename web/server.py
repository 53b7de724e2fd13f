"""How `serve` runs the app: uvicorn on httptools and uvloop, with a header deadline.

The server was chosen by measurement (`bench/web_bench.py` compares uvicorn's defaults,
uvicorn on httptools + uvloop, and granian on the same app in one run; README "Web
performance"). httptools (llhttp, C) parses a request in a fraction of h11's time and
uvloop runs the event loop in C; both are uvicorn's own optional accelerations, so the
server, its signals, shared sockets and graceful shutdown stay what they were. Without
them installed, `serve` falls back to h11 and asyncio (same behaviour, slower).

uvicorn bounds only idle keep-alive connections; a client that opens a connection and
trickles its request line and headers (or sends nothing) would hold it forever. The
protocols below give every request `HEADER_TIMEOUT_S` from the moment the server starts
waiting for it (connection opened, or previous response sent) to finish its headers, and
close the connection otherwise. Bodies are bounded in the ASGI layer
(`web.middleware.EdgeMiddleware`: size, and `BODY_TIMEOUT_S` for the whole body).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from chainlens.settings import Settings

T = TypeVar("T")


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers arrive too slowly."""

    header_timeout_s = 10.0
    _header_deadline: asyncio.TimerHandle | None = None

    # uvicorn's H11Protocol narrows BaseProtocol's parameter to asyncio.Transport itself
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(
            self.header_timeout_s, self._header_deadline_passed
        )

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        # IDLE: no complete request head yet. DONE/SEND_BODY: we answered (a 413, say) and the
        # client is still sending a body nobody will read.
        waiting_for_head = self.conn.their_state is h11.IDLE
        answered = self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY
        if waiting_for_head or answered:
            self.transport.close()


@functools.cache
def _httptools_protocol() -> type[asyncio.Protocol] | None:
    """uvicorn's httptools protocol with the same header deadline (None without httptools)."""
    if importlib.util.find_spec("httptools") is None:
        return None
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsHeaderDeadlineProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, closing connections whose request headers arrive
        too slowly.

        A request whose head is complete has a cycle (`on_headers_complete`) until its
        response completes; so when the deadline passes with no cycle, or with the last
        one answered, the server is waiting for a head (the connection's first, the next
        after a keep-alive response, or one being trickled) or for the rest of a body it
        already answered (a 413). A request whose head arrived (pipelined ones included)
        is never cut off here: its body has the ASGI layer's deadline.
        """

        header_timeout_s = 10.0
        _header_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)

        def handle_websocket_upgrade(self) -> None:
            self._disarm_header_deadline()  # the connection now belongs to the websocket
            super().handle_websocket_upgrade()

        def _disarm_header_deadline(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _arm_header_deadline(self) -> None:
            self._disarm_header_deadline()
            self._header_deadline = self.loop.call_later(
                self.header_timeout_s, self._header_deadline_passed
            )

        def _header_deadline_passed(self) -> None:
            self._header_deadline = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()

    return HttpToolsHeaderDeadlineProtocol


def protocol_class(settings: Settings) -> type[asyncio.Protocol]:
    """The HTTP/1.1 protocol with this deployment's header deadline: httptools when it is
    installed, else h11."""
    base = _httptools_protocol() or HeaderDeadlineProtocol
    return type(
        f"ChainLens{base.__name__}", (base,), {"header_timeout_s": settings.header_timeout_s}
    )


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration `serve` uses (tests build the same one)."""
    options = {
        "host": settings.host,
        "port": settings.port,
        "http": protocol_class(settings),
        **options,
    }
    return uvicorn.Config(app, **options)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (None: asyncio's default)."""
    if importlib.util.find_spec("uvloop") is None:
        return None
    import uvloop

    return uvloop.new_event_loop


def run_serving(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the serving event loop (`loop_factory`): what `serve` (and each
    of its web processes) runs `serve_forever` with."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
