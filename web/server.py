"""How `serve` runs the app under uvicorn: header deadline for slow clients.

uvicorn bounds only idle keep-alive connections; a client that opens a connection and
trickles its request line and headers (or sends nothing) would hold it forever. The h11
protocol below gives every request `HEADER_TIMEOUT_S` from the moment the server starts
waiting for it (connection opened, or previous response sent) to finish its headers, and
closes the connection otherwise. Bodies are bounded in the ASGI layer
(`web.middleware.RequestLimitsMiddleware`: size, and `BODY_TIMEOUT_S` for the whole body).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from chainlens.settings import Settings


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
        self._header_deadline = self.loop.call_later(self.header_timeout_s,
                                                     self._header_deadline_passed)

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


def protocol_class(settings: Settings) -> type[HeaderDeadlineProtocol]:
    """The h11 protocol with this deployment's header deadline."""
    class ChainLensH11Protocol(HeaderDeadlineProtocol):
        header_timeout_s = settings.header_timeout_s

    return ChainLensH11Protocol


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration `serve` uses (tests build the same one)."""
    options = {"host": settings.host, "port": settings.port, **options}
    return uvicorn.Config(app, http=protocol_class(settings), **options)
