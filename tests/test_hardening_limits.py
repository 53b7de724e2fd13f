"""Bounded inputs against a real uvicorn server on loopback (the config `serve` uses):
body size limits (413), slow bodies (408) and slow or silent request heads (closed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from chainlens.deps import Deps, open_deps
from chainlens.settings import Settings
from tests.conftest import make_test_settings
from tests.fake_telegram import _free_port

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
SLACK_S = 5.0  # a loaded CI machine may answer late; "bounded" is what is asserted


class Server:
    """The app under `web.server.server_config`, in its own thread and event loop."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        self.settings = settings
        self.options = options  # more server_config options (another HTTP protocol, say)
        self.port = _free_port()
        self.server: uvicorn.Server | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        from web.app import create_app
        from web.server import server_config

        async with open_deps(self.settings) as deps:
            app = create_app(self.settings, deps=deps)
            config = server_config(
                app,
                self.settings,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=2,
                **self.options,
            )
            self.server = uvicorn.Server(config)
            serving = asyncio.create_task(self.server.serve())
            while not self.server.started and not serving.done():
                await asyncio.sleep(0.01)
            self.ready.set()
            await serving

    def __enter__(self) -> Server:
        self.thread.start()
        assert self.ready.wait(60), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.should_exit = True
        self.thread.join(15)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


def _limits_settings(deps: Deps, database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return make_test_settings(
        database_url,
        redis_url,
        tmp_path,
        redis_prefix=deps.keys.prefix,
        header_timeout_s=HEADER_TIMEOUT_S,
        body_timeout_s=BODY_TIMEOUT_S,
        stripe_webhook_secret="whsec_test_secret",
    )


@pytest.fixture
def server(deps: Deps, database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Server]:
    with Server(_limits_settings(deps, database_url, redis_url, tmp_path)) as running:
        yield running


@pytest.fixture
def h11_server(deps: Deps, database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Server]:
    """The same server on uvicorn's h11 protocol (what `serve` uses without httptools)."""
    from web.server import HeaderDeadlineProtocol

    h11 = type("H11", (HeaderDeadlineProtocol,), {"header_timeout_s": HEADER_TIMEOUT_S})
    with Server(_limits_settings(deps, database_url, redis_url, tmp_path), http=h11) as running:
        yield running


def test_serve_uses_httptools_with_the_header_deadline(server: Server) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert server.server is not None
    protocol = server.server.config.http_protocol_class
    assert issubclass(protocol, HttpToolsProtocol)
    assert protocol.header_timeout_s == HEADER_TIMEOUT_S  # type: ignore[attr-defined]


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response (Content-Length framed) from a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length]


def closed_by_server(sock: socket.socket, within_s: float) -> float | None:
    """Seconds until the server closes `sock` (EOF or reset), or None if it stays open."""
    start = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - start < within_s:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


def test_declared_oversized_webhook_body_is_refused_before_it_is_read(server: Server) -> None:
    with server.connect() as sock:
        # 300 MB announced, nothing sent: the answer must not wait for the body.
        sock.sendall(
            b"POST /api/stripe/webhook HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 314572800\r\n\r\n"
        )
        status, headers, body = read_response(sock, timeout=5)
    assert status == 413
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large"
    assert "1,048,576 bytes" in error["message"]


def test_streamed_body_stops_at_the_limit_and_memory_stays_flat(server: Server) -> None:
    """A 300 MB chunked POST to the webhook: 413 after ~1 MB, connection closed, no balloon."""
    chunk = b"x" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    total_to_send = 300 * 1024 * 1024
    rss_before = rss_bytes()
    sent = 0
    response = b""
    with server.connect() as sock:
        sock.sendall(
            b"POST /api/stripe/webhook HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.setblocking(False)
        deadline = time.monotonic() + 20
        closed = False
        while time.monotonic() < deadline and not closed:
            readable, writable, _ = select.select(
                [sock], [sock] if sent < total_to_send else [], [], 0.5
            )
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                response += data
                closed = data == b""
            elif writable:
                try:
                    sent += sock.send(frame)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
    assert response.startswith(b"HTTP/1.1 413 "), response[:200]
    assert b'"payload_too_large"' in response
    # The server stopped reading at its limit: what the client got in is that megabyte plus
    # what the two kernels' socket buffers held, far from the 300 MB offered.
    assert sent < 32 * 1024 * 1024, sent
    assert rss_bytes() - rss_before < 64 * 1024 * 1024


def test_ordinary_endpoints_have_the_smaller_limit(server: Server) -> None:
    body = json.dumps({"email": "a" * 70_000 + "@example.com"}).encode()
    with server.connect() as sock:
        sock.sendall(
            b"POST /api/auth/magic-link HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for start in range(0, len(body), 16384):
            part = body[start : start + 16384]
            try:
                sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        status, _, reply = read_response(sock)
    assert status == 413
    assert "65,536 bytes" in json.loads(reply)["error"]["message"]


def test_a_body_that_trickles_past_its_time_is_408(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /api/auth/magic-link HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
        )
        start = time.monotonic()
        sock.settimeout(0.25)
        response = b""
        # One byte every 0.25 s keeps every single read short; the whole body's deadline holds.
        for _ in range(100):
            try:
                sock.send(b" ")
                response += sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if response:
                break
        elapsed = time.monotonic() - start
        # the head and the body may arrive in separate reads: read to the close
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                response += chunk
    assert response.startswith(b"HTTP/1.1 408 "), response[:200]
    assert b'"request_timeout"' in response
    assert BODY_TIMEOUT_S <= elapsed < BODY_TIMEOUT_S + SLACK_S


def test_a_stalled_body_is_408(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /api/stripe/webhook HTTP/1.1\r\nHost: localhost\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id"'
        )
        start = time.monotonic()
        status, headers, _ = read_response(sock, timeout=BODY_TIMEOUT_S + SLACK_S + 1)
        assert status == 408 and headers["connection"] == "close"
        assert time.monotonic() - start < BODY_TIMEOUT_S + SLACK_S
        assert closed_by_server(sock, SLACK_S) is not None


def test_a_silent_connection_is_closed(server: Server) -> None:
    with server.connect() as sock:
        closed_after = closed_by_server(sock, HEADER_TIMEOUT_S + SLACK_S + 1)
    assert closed_after is not None and closed_after < HEADER_TIMEOUT_S + SLACK_S


def test_trickled_headers_are_cut_off(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n")
        start = time.monotonic()
        closed = False
        for i in range(100):  # a header line every 0.2 s, never the blank line that ends them
            try:
                sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_by_server(sock, 0.2) is not None:
                closed = True
                break
        elapsed = time.monotonic() - start
    assert closed
    assert HEADER_TIMEOUT_S - 0.2 <= elapsed < HEADER_TIMEOUT_S + SLACK_S


def test_keep_alive_requests_within_the_deadline_are_served(server: Server) -> None:
    with server.connect() as sock:
        for _ in range(3):
            sock.sendall(b"GET /ready HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, _, body = read_response(sock)
            assert status == 200 and body == b"ready"
            time.sleep(HEADER_TIMEOUT_S * 0.5)  # each request gets its own deadline


def test_h11_cuts_off_trickled_headers_and_silent_connections(h11_server: Server) -> None:
    test_trickled_headers_are_cut_off(h11_server)
    test_a_silent_connection_is_closed(h11_server)
    test_keep_alive_requests_within_the_deadline_are_served(h11_server)
