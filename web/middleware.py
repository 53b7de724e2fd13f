"""Pure ASGI middleware (streaming stays streaming): security headers on every response,
bounded request bodies, and CORS for the widget's endpoints only."""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.errors import error_response, status_code_name

# The widget script runs on other sites; our own pages allow only our own resources.
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
                # Swagger UI (/docs, /redoc) loads its own scripts from a CDN.
                if headers.get("content-type", "").startswith("text/html") and not scope[
                    "path"
                ].startswith(("/docs", "/redoc")):
                    headers.setdefault("Content-Security-Policy", _CSP)
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestTooLarge(HTTPException):
    """The request body is over its limit: 413, and the connection closes (its unread rest
    is never read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit:,} bytes.",
                         headers={"Connection": "close"})


class RequestTimedOut(HTTPException):
    """The request body did not arrive in time: 408, and the connection closes."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"The request body did not arrive within {seconds:g} seconds.",
                         headers={"Connection": "close"})


def _is_webhook(path: str) -> bool:
    return "webhook" in path.split("/")


class RequestLimitsMiddleware:
    """Bounds every request body before anyone reads it (pure ASGI).

    A declared Content-Length over the limit is refused at once; a chunked body is counted
    as it streams and refused as soon as it passes the limit. The whole body must arrive
    within `body_timeout_s` of the first read. Webhooks (signed payloads from Stripe or
    Telegram) get their own, larger limit. Both answers close the connection, so the rest of
    a big or stalled body is never read.
    """

    def __init__(self, app: ASGIApp, *, max_body: int, max_webhook_body: int,
                 body_timeout_s: float) -> None:
        self.app = app
        self.max_body = max_body
        self.max_webhook_body = max_webhook_body
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_webhook_body if _is_webhook(scope["path"]) else self.max_body
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            error = (RequestTooLarge(limit) if declared.isdigit()
                     else HTTPException(400, "Content-Length is not a number.",
                                        headers={"Connection": "close"}))
            await _error(error)(scope, receive, send)
            return

        received = 0
        body_done = False
        deadline: float | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done, deadline
            if body_done:
                return await receive()  # after the body: only a disconnect, however late
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.body_timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimedOut(self.body_timeout_s) from None
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
            await self.app(scope, limited_receive, tracking_send)
        except (RequestTooLarge, RequestTimedOut) as exc:
            # Raised where nothing turned it into a response (a body read in a middleware).
            if started:
                raise
            await _error(exc)(scope, receive, send)


def _error(exc: HTTPException) -> Response:
    return error_response(exc.status_code, status_code_name(exc.status_code), str(exc.detail),
                          headers=exc.headers)


# The widget runs on other sites and calls only these; everything else (account, keys,
# links, payments) answers same-origin only.
WIDGET_PATHS = ("/api/chat/query", "/api/chat/stream", "/api/chat/quota")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class WidgetCORSMiddleware:
    """CORS (with credentials) for the widget's chat endpoints, and only for them.

    Elsewhere no CORS header is ever sent, and a state-changing request whose `Origin` is
    another site is refused (403): with SameSite=None session cookies (an HTTPS embed) a
    form on any site could otherwise post with the visitor's session.
    """

    def __init__(self, app: ASGIApp, *, origins: list[str], public_origin: str) -> None:
        from starlette.middleware.cors import CORSMiddleware

        self.app = app
        self.public_origin = public_origin
        self.cors = CORSMiddleware(
            app, allow_origins=origins, allow_credentials=True,
            allow_methods=["GET", "POST"], allow_headers=["Content-Type", "Authorization"],
            expose_headers=["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                            "Retry-After"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in WIDGET_PATHS:
            await self.cors(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if (origin is not None and scope["method"] not in _SAFE_METHODS
                and not self._same_origin(origin, headers.get("host", ""))):
            error = HTTPException(403, "Cross-site requests are not allowed here.")
            await _error(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _same_origin(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/")
        return origin == self.public_origin or origin.partition("://")[2] == host
