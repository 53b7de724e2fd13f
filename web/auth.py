"""Who is calling: an API key, a signed session cookie, or a new anonymous session.

Resolution order for `current_caller` (and `current_account` / `current_identity`):
1. `Authorization: Bearer <api key>` — a wrong or revoked key is a 401, never a fallback;
2. the `cl_session` cookie, signed with SECRET_KEY (itsdangerous), naming `web:<email>` or
   `web-anon:<id>`;
3. otherwise a fresh `web-anon:<random id>` identity, set in the cookie on this response.
Anonymous callers also consume from a free-tier bucket for their client IP
(`consume_web_request`). The tier always comes from the account, never from a header.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from billing.accounts import Account, account_for_identity, identity_kind, normalize_identity
from billing.api_keys import account_for_api_key
from billing.errors import AccountNotFound, InvalidIdentity, QuotaUnavailable
from billing.quota import QuotaDecision, consume_request
from chainlens.deps import Deps
from chainlens.settings import Settings
from web.errors import ApiError

SESSION_COOKIE = "cl_session"
SESSION_MAX_AGE_S = 365 * 24 * 3600
_SALT = "chainlens.session"
_PENDING_COOKIE = "chainlens.set_cookie"   # scope key the middleware reads

CallerVia = Literal["api_key", "session", "anonymous"]


@dataclass(frozen=True, slots=True)
class Caller:
    identity: str
    account: Account
    via: CallerVia

    @property
    def anonymous(self) -> bool:
        return self.via == "anonymous"


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=_SALT)


def session_cookie_value(settings: Settings, identity: str) -> str:
    """The signed cookie value naming `identity`."""
    return _serializer(settings).dumps({"i": normalize_identity(identity)})


def read_session(settings: Settings, value: str | None) -> str | None:
    """The identity in a session cookie, or None when absent, tampered with or too old."""
    if not value:
        return None
    try:
        data = _serializer(settings).loads(value, max_age=SESSION_MAX_AGE_S)
        identity = normalize_identity(str(data["i"]))
    except (BadSignature, InvalidIdentity, KeyError, TypeError):
        return None
    return identity if identity_kind(identity) in ("web", "web-anon") else None


def _cookie_header(settings: Settings, identity: str) -> str:
    response = Response()
    set_session_cookie(response, settings, identity)
    return response.headers["set-cookie"]


def set_session_cookie(response: Response, settings: Settings, identity: str) -> None:
    """Sign `identity` into the session cookie on `response` (e.g. after a magic-link sign-in)."""
    https = str(settings.public_base_url).startswith("https://")
    # A widget embedded on an allowed other site needs the cookie on cross-site requests,
    # which browsers only send for SameSite=None (and only over HTTPS).
    samesite: Literal["lax", "none"] = "none" if https and settings.cors_origins else "lax"
    response.set_cookie(
        SESSION_COOKIE, session_cookie_value(settings, identity), max_age=SESSION_MAX_AGE_S,
        path="/", httponly=True, samesite=samesite, secure=https)


async def sign_in_email(deps: Deps, email: str) -> Account:
    """The account for a verified email address (`web:<email>`), created on first sign-in."""
    return await account_for_identity(deps, f"web:{email.strip().lower()}")


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


def _queue_cookie(request: Request, response: Response, identity: str) -> None:
    settings = _deps(request).settings
    pending = request.scope.get(_PENDING_COOKIE)
    if isinstance(pending, list):
        pending.append(_cookie_header(settings, identity))  # also reaches streamed responses
    else:
        set_session_cookie(response, settings, identity)


async def current_caller(request: Request, response: Response) -> Caller:
    """FastAPI dependency: resolve the caller once per request."""
    cached = request.scope.get("chainlens.caller")
    if isinstance(cached, Caller):
        return cached
    deps = _deps(request)
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        found = await account_for_api_key(deps, auth[7:].strip())
        if found is None:
            raise ApiError(401, "invalid_api_key", "The API key is not valid or was revoked.",
                           headers={"WWW-Authenticate": "Bearer"})
        key_id, account = found
        caller = Caller(f"api-key:{key_id}", account, "api_key")
    else:
        identity = read_session(deps.settings, request.cookies.get(SESSION_COOKIE))
        if identity is None:
            identity = f"web-anon:{secrets.token_urlsafe(18)}"
            _queue_cookie(request, response, identity)
        try:
            account = await account_for_identity(deps, identity)
        except AccountNotFound as exc:
            raise ApiError(401, "unauthorized", "Your session is no longer valid.") from exc
        via: CallerVia = "anonymous" if identity_kind(identity) == "web-anon" else "session"
        caller = Caller(identity, account, via)
    request.scope["chainlens.caller"] = caller
    return caller


async def current_account(caller: Caller = Depends(current_caller)) -> Account:
    """FastAPI dependency: the calling account."""
    return caller.account


async def current_identity(caller: Caller = Depends(current_caller)) -> str:
    """FastAPI dependency: the calling identity (`web:...`, `web-anon:...`, `api-key:<id>`)."""
    return caller.identity


def client_ip(request: Request) -> str:
    # The socket peer; behind a proxy, uvicorn's --proxy-headers/--forwarded-allow-ips sets it,
    # so a client cannot pick its own bucket with a forged X-Forwarded-For.
    return request.client.host if request.client else "unknown"


def rate_limit_headers(decision: QuotaDecision) -> dict[str, str]:
    """X-RateLimit-* (and Retry-After on a refusal) for a quota decision."""
    headers = {"X-RateLimit-Limit": str(decision.limit),
               "X-RateLimit-Remaining": str(decision.remaining),
               "X-RateLimit-Reset": str(int(decision.reset_at.timestamp()))}
    if not decision.allowed and decision.retry_after_s is not None:
        headers["Retry-After"] = str(decision.retry_after_s)
    return headers


def quota_refused(decision: QuotaDecision) -> ApiError:
    """The 429 for a refused decision: message in words, upgrade link, rate-limit headers."""
    return ApiError(429, "quota_exceeded", decision.refusal_message(),
                    details={"window": decision.window, "limit": decision.limit,
                             "tier": decision.tier, "reset_at": decision.reset_at.isoformat(),
                             "upgrade_url": decision.upgrade_url},
                    headers=rate_limit_headers(decision))


async def consume_web_request(request: Request, caller: Caller) -> QuotaDecision:
    """Consume one request for a web caller (anonymous ones also per IP); 429 when refused."""
    ip = client_ip(request) if caller.anonymous else None
    try:
        decision = await consume_request(_deps(request), caller.account, client_ip=ip)
    except QuotaUnavailable as exc:
        raise ApiError(503, "quota_unavailable",
                       "We cannot check your quota right now; please try again shortly.") from exc
    if not decision.allowed:
        raise quota_refused(decision)
    return decision


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]


class SessionCookieMiddleware:
    """Adds the session cookie chosen during the request to whatever response goes out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pending: list[str] = []
        scope[_PENDING_COOKIE] = pending

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and pending:
                headers = list(message.get("headers", []))
                headers += [(b"set-cookie", value.encode("latin-1")) for value in pending]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)
