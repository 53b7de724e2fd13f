"""The app's one pure ASGI middleware (streaming stays streaming).

Per HTTP request, in one layer: Prometheus metrics (count and latency per route template),
security headers on every response, the session cookie chosen during the request, CORS for
the widget's endpoints only (same-origin elsewhere), and bounded request bodies (size and
time). One layer instead of five: each former layer wrapped `send` (and some `receive`) in a
closure and re-parsed the headers; here the headers are scanned once and the response's
extra headers are appended from lists built at start-up.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chainlens.i18n import N_, Localizer, localizer
from web.errors import error_response, status_code_name
from web.metrics import HttpMetrics

# The widget script runs on other sites; our own pages allow only our own resources.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

# Scope key: the session cookies chosen during a request (`web.auth` appends to the list);
# they go out with whatever response is sent, streamed ones included.
PENDING_COOKIES = "chainlens.set_cookie"

# The widget runs on other sites and calls only these; everything else (account, keys,
# links, payments) answers same-origin only.
WIDGET_PATHS = frozenset(("/api/chat/query", "/api/chat/stream", "/api/chat/quota"))
_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
# Swagger UI (/docs, /redoc) loads its own scripts and styles.
_NO_CSP_PREFIXES = ("/docs", "/redoc")

_Header = tuple[bytes, bytes]


class EdgeError(HTTPException):
    """An error the edge answers itself (before any route), worded in the caller's language:
    `msgid` is a catalogue message (marked with `N_`), `params` its placeholders' values."""

    def __init__(self, status: int, msgid: str, *, close: bool = False, **params: float) -> None:
        super().__init__(status, msgid, headers={"Connection": "close"} if close else None)
        self.msgid = msgid
        self.params = params

    def text(self, loc: Localizer) -> str:
        return loc._(self.msgid).format(
            **{
                name: loc.number(value, 0 if float(value).is_integer() else 1)
                for name, value in self.params.items()
            }
        )


class RequestTooLarge(EdgeError):
    """The request body is over its limit: 413, and the connection closes (its unread rest
    is never read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, N_("The request body is larger than {limit} bytes."), close=True, limit=limit
        )


class RequestTimedOut(EdgeError):
    """The request body did not arrive in time: 408, and the connection closes."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            N_("The request body did not arrive within {seconds} seconds."),
            close=True,
            seconds=seconds,
        )


def _is_webhook(path: str) -> bool:
    return "webhook" in path.split("/")


def _error(exc: EdgeError, scope: Scope) -> Response:
    from starlette.requests import Request

    from web.i18n import request_language

    loc = localizer(request_language(Request(scope)))
    return error_response(
        exc.status_code,
        status_code_name(exc.status_code),
        exc.text(loc),
        headers=dict(exc.headers) if exc.headers else None,
    )


class EdgeMiddleware:
    """Everything the app does around a request, as one pure ASGI layer.

    - Metrics: `chainlens_http_requests_total` and `..._request_duration_seconds` per method
      and route template (bounded label cardinality); a request that raises counts as 500.
    - Security headers on every response (an endpoint's own value wins); the CSP on HTML
      except Swagger UI's pages; HSTS when the public URL is HTTPS.
    - Session cookies queued during the request (`PENDING_COOKIES`) on the response.
    - CORS (with credentials, through Starlette's `CORSMiddleware`) for the widget's chat
      endpoints only. Elsewhere no CORS header is ever sent, and a state-changing request
      whose `Origin` is another site is refused (403): with SameSite=None session cookies
      (an HTTPS embed) a form on any site could otherwise post with the visitor's session.
    - Bounded bodies: a declared Content-Length over the limit is refused at once; a chunked
      body is counted as it streams and refused as soon as it passes the limit; the whole
      body must arrive within `body_timeout_s` of the first read. Webhooks (signed payloads
      from Stripe or Telegram) get their own, larger limit. Both answers close the
      connection, so the rest of a big or stalled body is never read.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics,
        hsts: bool,
        max_body: int,
        max_webhook_body: int,
        body_timeout_s: float,
        cors_origins: list[str],
        public_origin: str,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body
        self.max_webhook_body = max_webhook_body
        self.body_timeout_s = body_timeout_s
        self.public_origin = public_origin
        security: list[_Header] = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
            (b"x-frame-options", b"DENY"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if hsts:
            security.append((b"strict-transport-security", b"max-age=31536000"))
        self._security = security
        self._security_csp = [*security, (b"content-security-policy", _CSP.encode())]
        self._security_names = frozenset(name for name, _ in self._security_csp)
        # The widget's paths: CORS around the same bounded call of the app.
        self._cors = CORSMiddleware(
            self._bounded,
            allow_origins=cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization"],
            expose_headers=[
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
            ],
        )
        # prometheus_client's .labels() validates and locks on every call; children per label
        # set are kept here (they live as long as the metric; nothing removes them).
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        path: str = scope["path"]
        pending: list[str] = []
        scope[PENDING_COOKIES] = pending
        security, security_csp = self._security, self._security_csp

        async def send_edge(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers: list[_Header] = list(message.get("headers", ()))
                html = False
                present: set[bytes] | None = None
                names = self._security_names
                for name, value in headers:
                    lowered = name.lower()
                    if lowered == b"content-type":
                        html = value.startswith(b"text/html")
                    elif lowered in names:
                        present = present or set()
                        present.add(lowered)
                extra = security_csp if html and not path.startswith(_NO_CSP_PREFIXES) else security
                if present is None:
                    headers += extra
                else:
                    headers += [header for header in extra if header[0] not in present]
                if pending:
                    headers += [(b"set-cookie", value.encode("latin-1")) for value in pending]
                message["headers"] = headers
            await send(message)

        try:
            if path in WIDGET_PATHS:
                await self._cors(scope, receive, send_edge)
                return
            if scope["method"] not in _SAFE_METHODS:
                origin = host = None
                for name, value in scope["headers"]:
                    if name == b"origin":
                        origin = value.decode("latin-1")
                    elif name == b"host":
                        host = value.decode("latin-1")
                if origin is not None and not self._same_origin(origin, host or ""):
                    error = EdgeError(403, N_("Cross-site requests are not allowed here."))
                    await _error(error, scope)(scope, receive, send_edge)
                    return
            await self._bounded(scope, receive, send_edge)
        finally:
            self._observe(scope, status, time.perf_counter() - start)

    def _same_origin(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/")
        return origin == self.public_origin or origin.partition("://")[2] == host

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        # The router records the matched route in the scope; its template
        # ("/api/usage/project/{project_id}") keeps label cardinality bounded.
        route = str(getattr(scope.get("route"), "path", "unmatched"))
        method: str = scope["method"]
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self.metrics.requests.labels(method, route, str(status))
            self._counters[(method, route, status)] = counter
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = self.metrics.latency.labels(method, route)
            self._histograms[(method, route)] = histogram
        counter.inc()
        histogram.observe(seconds)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Call the app with the request body bounded in size and time."""
        limit = self.max_webhook_body if _is_webhook(scope["path"]) else self.max_body
        for name, declared in scope["headers"]:
            if name == b"content-length":
                if not declared.isdigit():
                    error: EdgeError = EdgeError(
                        400, N_("Content-Length is not a number."), close=True
                    )
                elif int(declared) > limit:
                    error = RequestTooLarge(limit)
                else:
                    break
                await _error(error, scope)(scope, receive, send)
                return

        received = 0
        body_done = False
        deadline: float | None = None
        started = False
        timeout_s = self.body_timeout_s

        async def bounded_receive() -> Message:
            nonlocal received, body_done, deadline
            if body_done:
                return await receive()  # after the body: only a disconnect, however late
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimedOut(timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except (RequestTooLarge, RequestTimedOut) as exc:
            # Raised where nothing turned it into a response (a body read in a middleware).
            if started:
                raise
            await _error(exc, scope)(scope, receive, send)
