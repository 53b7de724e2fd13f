"""Who is calling: an API key, a signed session cookie, or a new anonymous session.

Resolution order for `current_caller` (and `current_account` / `current_identity`):
1. `Authorization: Bearer <api key>` — a wrong or revoked key is a 401, never a fallback;
2. the `cl_session` cookie, signed with SECRET_KEY (itsdangerous), naming `web:<email>` or
   `web-anon:<id>`. It expires after SESSION_MAX_AGE_DAYS without use (each use renews it),
   and a signed-in cookie carries its account's session version: signing out bumps the
   version, which revokes every cookie issued before;
3. otherwise a fresh `web-anon:<random id>` identity, set in the cookie on this response.
An anonymous identity has no rows until its first charged request (`admit_web_request` saves
it, capped per client network); before that the caller holds a provisional account.
Free callers also consume from their client network's bucket; the client network is the
socket peer, or — only when the peer is a proxy listed in `FORWARDED_ALLOW_IPS` — the
nearest untrusted address in `X-Forwarded-For`; IPv6 clients count per /64.
The tier always comes from the account, never from a header.
"""

from __future__ import annotations

import functools
import ipaddress
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from billing.accounts import (
    Account,
    account_for_identity,
    identity_kind,
    normalize_identity,
)
from billing.anonymous import (
    find_account,
    is_provisional,
    provisional_account,
    save_anonymous_account,
)
from billing.api_keys import account_for_api_key
from billing.errors import (
    AccountNotFound,
    InvalidIdentity,
    QuotaUnavailable,
    TooManyNewAccounts,
)
from billing.quota import QuotaDecision, consume_request, quota_status
from billing.quota_store import Rider
from chainlens.deps import Deps
from chainlens.i18n import N_
from chainlens.settings import Settings
from web.errors import ApiError
from web.i18n import quota_refusal, request_language
from web.middleware import PENDING_COOKIES

SESSION_COOKIE = "cl_session"
_SALT = "chainlens.session"
_RENEW_AFTER_S = 24 * 3600  # a cookie older than this is re-issued on use (sliding expiry)

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
            value, max_age=session_max_age_s(settings), return_timestamp=True
        )
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


def set_session_cookie(
    response: Response, settings: Settings, identity: str, version: int = 0
) -> None:
    """Sign `identity` into the session cookie on `response` (e.g. after a magic-link sign-in)."""
    https, samesite = _cookie_flags(settings)
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie_value(settings, identity, version),
        max_age=session_max_age_s(settings),
        path="/",
        httponly=True,
        samesite=samesite,
        secure=https,
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    """Remove the session cookie from the browser."""
    https, samesite = _cookie_flags(settings)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite=samesite, secure=https)


async def session_version(deps: Deps, account_id: int) -> int:
    """The account's current session version (bumped by each sign-out)."""
    version = await deps.db.fetchval("SELECT session_version FROM users WHERE id = $1", account_id)
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
        " AND session_version = $2",
        session.identity,
        session.version,
    )


async def sign_in_email(deps: Deps, email: str) -> Account:
    """The account for a verified email address (`web:<email>`), created on first sign-in."""
    return await account_for_identity(deps, f"web:{email.strip().lower()}")


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


def _queue_cookie(request: Request, response: Response, identity: str, version: int = 0) -> None:
    settings = _deps(request).settings
    pending = request.scope.get(PENDING_COOKIES)
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
            " WHERE i.identity = $1",
            session.identity,
        )
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
            raise ApiError(
                401,
                "invalid_api_key",
                N_("The API key is not valid or was revoked."),
                headers={"WWW-Authenticate": "Bearer"},
            )
        key_id, account = found
        caller = Caller(f"api-key:{key_id}", account, "api_key")
    else:
        identity = await _session_identity(request, response, deps)
        if identity is None:
            identity = f"web-anon:{secrets.token_urlsafe(18)}"
            _queue_cookie(request, response, identity)
        via: CallerVia = "anonymous" if identity_kind(identity) == "web-anon" else "session"
        try:
            if via == "anonymous":
                # Saved on the first charged request only: reads and refusals write nothing.
                account = await find_account(deps, identity) or provisional_account()
            else:
                account = await account_for_identity(deps, identity)
        except AccountNotFound as exc:
            raise ApiError(401, "unauthorized", N_("Your session is no longer valid.")) from exc
        caller = Caller(identity, account, via)
    request.scope["chainlens.caller"] = caller
    return caller


async def current_account(caller: Caller = Depends(current_caller)) -> Account:
    """FastAPI dependency: the calling account."""
    return caller.account


async def current_identity(caller: Caller = Depends(current_caller)) -> str:
    """FastAPI dependency: the calling identity (`web:...`, `web-anon:...`, `api-key:<id>`)."""
    return caller.identity


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _trusted_networks(entries: tuple[str, ...]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 203.0.113.7:5000
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _network_of(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    # One IPv6 subscriber usually holds a whole /64: count it as one client.
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def resolve_client_ip(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[str]
) -> str:
    """The client network for quotas: the peer, or behind trusted proxies the nearest
    untrusted hop of X-Forwarded-For (read right to left, so a client cannot prepend one)."""
    networks = _trusted_networks(tuple(trusted))
    current = _address(peer) if peer else None
    if current is None:
        return peer or "unknown"
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    while hops and any(current in net for net in networks if net.version == current.version):
        hop = _address(hops.pop())
        if hop is None:
            break  # a malformed hop: stop at the last address we could trust
        current = hop
    return _network_of(current)


def client_ip(request: Request) -> str:
    """The caller's client network (see `resolve_client_ip`), cached on the request."""
    cached = request.scope.get("chainlens.client_ip")
    if isinstance(cached, str):
        return cached
    settings = _deps(request).settings
    found = resolve_client_ip(
        request.client.host if request.client else None,
        request.headers.getlist("x-forwarded-for"),
        settings.forwarded_allow_ips,
    )
    request.scope["chainlens.client_ip"] = found
    return found


def quota_ip(request: Request, caller: Caller) -> str | None:
    """The client network a caller's requests also count against: free callers only."""
    return client_ip(request) if caller.account.tier == "free" else None


def rate_limit_headers(decision: QuotaDecision) -> dict[str, str]:
    """X-RateLimit-* (and Retry-After on a refusal) for a quota decision."""
    headers = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(int(decision.reset_at.timestamp())),
    }
    if not decision.allowed and decision.retry_after_s is not None:
        headers["Retry-After"] = str(decision.retry_after_s)
    return headers


def quota_refused(decision: QuotaDecision, language: str | None = None) -> ApiError:
    """The 429 for a refused decision: message in words (in `language`), upgrade link,
    rate-limit headers."""
    return ApiError(
        429,
        "quota_exceeded",
        quota_refusal(decision, language),
        details={
            "window": decision.window,
            "limit": decision.limit,
            "tier": decision.tier,
            "reset_at": decision.reset_at.isoformat(),
            "upgrade_url": decision.upgrade_url,
            # A per-minute refusal leaves the day's count as it was.
            "day_limit": decision.day_limit,
            "day_remaining": max(0, decision.day_limit - decision.day_used),
        },
        headers=rate_limit_headers(decision),
    )


def _quota_unavailable() -> ApiError:
    return ApiError(
        503,
        "quota_unavailable",
        N_("We cannot check your quota right now; please try again shortly."),
    )


async def saved_caller(request: Request, caller: Caller) -> Caller:
    """The caller with a saved account: an anonymous visitor's is created here (capped per
    client network; 429 past the cap)."""
    if not is_provisional(caller.account):
        return caller
    try:
        account = await save_anonymous_account(
            _deps(request), caller.identity, client_ip=client_ip(request)
        )
    except TooManyNewAccounts as exc:
        decision: QuotaDecision = exc.decision
        raise ApiError(
            429,
            "too_many_new_sessions",
            N_("Too many new visitors from your network today. Please sign in to continue."),
            headers=rate_limit_headers(decision),
            details={"reset_at": decision.reset_at.isoformat()},
        ) from None
    except QuotaUnavailable:
        raise _quota_unavailable() from None
    saved = replace(caller, account=account)
    request.scope["chainlens.caller"] = saved
    return saved


async def admit_web_request(
    request: Request, caller: Caller, *, rider: Rider | None = None
) -> tuple[Caller, QuotaDecision]:
    """Consume one request for a web caller (free ones also per client network); 429 when
    refused. A provisional anonymous account is saved only when the request is admitted.
    `rider`: a read to run in the same quota script (`billing.quota.consume_request`)."""
    deps = _deps(request)
    ip = quota_ip(request, caller)
    try:
        if is_provisional(caller.account):
            peek = await quota_status(deps, caller.account, client_ip=ip)
            if not peek.allowed:
                raise quota_refused(peek, request_language(request))
            caller = await saved_caller(request, caller)
        decision = await consume_request(deps, caller.account, client_ip=ip, rider=rider)
    except QuotaUnavailable:
        raise _quota_unavailable() from None
    if not decision.allowed:
        raise quota_refused(decision, request_language(request))
    return caller, decision


async def consume_web_request(request: Request, caller: Caller) -> QuotaDecision:
    """Consume one request for a web caller; 429 when refused (see `admit_web_request`)."""
    return (await admit_web_request(request, caller))[1]
