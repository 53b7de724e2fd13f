"""Who is calling: an API key, a signed session cookie, or a new anonymous session.

Resolution order for `current_caller` (and `current_account` / `current_identity`):
1. `Authorization: Bearer <api key>` — a wrong or revoked key is a 401, never a fallback;
2. the `cl_session` cookie, signed with SECRET_KEY (itsdangerous), naming `web:<email>` or
   `web-anon:<id>`. It expires after SESSION_MAX_AGE_DAYS without use (each use renews it),
   and a signed-in cookie carries its account's session version: signing out bumps the
   version, which revokes every cookie issued before;
3. otherwise a fresh `web-anon:<random id>` identity, set in the cookie on this response.
Anonymous callers also consume from a free-tier bucket for their client IP
(`consume_web_request`). The tier always comes from the account, never from a header.
"""

from __future__ import annotations

import secrets
import time
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
_SALT = "chainlens.session"
_RENEW_AFTER_S = 24 * 3600  # a cookie older than this is re-issued on use (sliding expiry)
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


@dataclass(frozen=True, slots=True)
class Session:
    identity: str
    version: int
    issued_at: float


def session_max_age_s(settings: Settings) -> int:
    return settings.session_max_age_days * 24 * 3600


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=_SALT)


def session_cookie_value(settings: Settings, identity: str, version: int = 0) -> str:
    """The signed cookie value naming `identity` at the account's session `version`."""
    return _serializer(settings).dumps({"i": normalize_identity(identity), "v": version})


def read_session(settings: Settings, value: str | None) -> Session | None:
    """The session in a cookie, or None when absent, tampered with or expired."""
    if not value or len(value) > 1024:
        return None
    try:
        data, issued = _serializer(settings).loads(
            value, max_age=session_max_age_s(settings), return_timestamp=True)
        identity = normalize_identity(str(data["i"]))
        version = int(data.get("v", 0))
    except (BadSignature, InvalidIdentity, KeyError, TypeError, ValueError, AttributeError):
        return None
    if identity_kind(identity) not in ("web", "web-anon"):
        return None
    return Session(identity, version, issued.timestamp())


def _cookie_header(settings: Settings, identity: str, version: int) -> str:
    response = Response()
    set_session_cookie(response, settings, identity, version)
    return response.headers["set-cookie"]


def _cookie_flags(settings: Settings) -> tuple[bool, Literal["lax", "none"]]:
    https = str(settings.public_base_url).startswith("https://")
    # A widget embedded on an allowed other site needs the cookie on cross-site requests,
    # which browsers only send for SameSite=None (and only over HTTPS).
    return https, "none" if https and settings.cors_origins else "lax"


def set_session_cookie(response: Response, settings: Settings, identity: str,
                       version: int = 0) -> None:
    """Sign `identity` into the session cookie on `response` (e.g. after a magic-link sign-in)."""
    https, samesite = _cookie_flags(settings)
    response.set_cookie(
        SESSION_COOKIE, session_cookie_value(settings, identity, version),
        max_age=session_max_age_s(settings), path="/", httponly=True, samesite=samesite,
        secure=https)


def clear_session_cookie(response: Response, settings: Settings) -> None:
    """Remove the session cookie from the browser."""
    https, samesite = _cookie_flags(settings)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite=samesite,
                           secure=https)


async def session_version(deps: Deps, account_id: int) -> int:
    """The account's current session version (bumped by each sign-out)."""
    version = await deps.db.fetchval("SELECT session_version FROM users WHERE id = $1",
                                     account_id)
    return int(version or 0)


def request_session(request: Request) -> Session | None:
    """The request's session cookie if validly signed and not expired (revocation is
    checked by `current_caller`)."""
    return read_session(_deps(request).settings, request.cookies.get(SESSION_COOKIE))


async def revoke_sessions(deps: Deps, session: Session) -> None:
    """Sign a signed-in session's account out everywhere: every session cookie issued so
    far stops working. A cookie revoked already changes nothing; anonymous sessions only
    lose their cookie."""
    if identity_kind(session.identity) != "web":
        return
    await deps.db.execute(
        "UPDATE users SET session_version = session_version + 1, updated_at = now()"
        " WHERE id = (SELECT user_id FROM identities WHERE identity = $1)"
        " AND session_version = $2", session.identity, session.version)


async def sign_in_email(deps: Deps, email: str) -> Account:
    """The account for a verified email address (`web:<email>`), created on first sign-in."""
    return await account_for_identity(deps, f"web:{email.strip().lower()}")


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


def _queue_cookie(request: Request, response: Response, identity: str, version: int = 0) -> None:
    settings = _deps(request).settings
    pending = request.scope.get(_PENDING_COOKIE)
    if isinstance(pending, list):
        # also reaches streamed responses
        pending.append(_cookie_header(settings, identity, version))
    else:
        set_session_cookie(response, settings, identity, version)


async def _session_identity(request: Request, response: Response, deps: Deps) -> str | None:
    """The identity of a valid session cookie (renewed when due), or None."""
    session = read_session(deps.settings, request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    if identity_kind(session.identity) == "web":
        version = await deps.db.fetchval(
            "SELECT u.session_version FROM identities i JOIN users u ON u.id = i.user_id"
            " WHERE i.identity = $1", session.identity)
        if (version or 0) != session.version:
            return None  # signed out since this cookie was issued
    if time.time() - session.issued_at > _RENEW_AFTER_S:
        _queue_cookie(request, response, session.identity, session.version)
    return session.identity


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
        identity = await _session_identity(request, response, deps)
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
