"""The account page and its data, email sign-in by magic link, and the pricing page."""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from billing.accounts import identities_of
from billing.errors import QuotaUnavailable
from billing.payments import subscription_summary
from billing.quota import QuotaDecision, consume_limits, quota_status
from billing.quota_store import Bucket
from billing.usage import monthly_cost
from chainlens.deps import Deps
from chainlens.mailer import EmailFailed, EmailNotConfigured, send_email
from web.auth import (
    Caller,
    clear_session_cookie,
    client_ip,
    current_caller,
    quota_ip,
    rate_limit_headers,
    request_session,
    revoke_sessions,
    session_version,
    set_session_cookie,
    sign_in_email,
)
from web.errors import ApiError, ErrorResponse
from web.routes.pages import STATIC_DIR

router = APIRouter(tags=["account"])
MAGIC_LINK_TTL = timedelta(minutes=15)
_LINKS_PER_HOUR = 5          # per address
_LINKS_PER_IP_MINUTE = 3     # bursts; the daily allowances are settings
_LINKS_PER_MINUTE = 100
_SIGNIN_COOKIE = "cl_signin"  # binds the sign-in form to the browser that opened the link


class AccountOut(BaseModel):
    tier: str
    anonymous: bool
    identities: list[str]
    daily_used: int
    daily_limit: int
    monthly_cost: float
    subscription: dict[str, Any] | None
    # What the page offers: an upgrade only below Pro, the Stripe portal only to an account
    # with a live Stripe subscription.
    can_upgrade: bool
    can_manage_subscription: bool


class MagicLinkRequest(BaseModel):
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                       examples=["ann@example.com"])


class MagicLinkSent(BaseModel):
    sent: bool


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@router.get("/api/account", response_model=AccountOut)
async def account_data(request: Request, caller: Caller = Depends(current_caller)) -> AccountOut:
    """Tier, today's usage, linked channels and subscription of the caller's account."""
    deps = _deps(request)
    account = caller.account
    status = await quota_status(deps, account, client_ip=quota_ip(request, caller))
    subscription = await subscription_summary(deps, account)
    stripe_subscription = account.stripe_customer_id is not None and await deps.db.fetchval(
        """SELECT EXISTS (SELECT 1 FROM subscriptions WHERE user_id = $1 AND ended_at IS NULL
                          AND stripe_subscription_id IS NOT NULL)""", account.id)
    return AccountOut(
        tier=account.tier, anonymous=caller.anonymous,
        # An anonymous visitor not charged yet has no rows, only the identity in its cookie.
        identities=(await identities_of(deps, account.id)) if account.id > 0 else [caller.identity],
        daily_used=status.day_used, daily_limit=status.day_limit,
        monthly_cost=float(await monthly_cost(deps, account.id)),
        subscription=subscription if subscription["status"] != "none" else None,
        can_upgrade=account.tier == "free", can_manage_subscription=bool(stripe_subscription))


@router.post("/api/auth/magic-link", response_model=MagicLinkSent, responses={
    429: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
async def request_magic_link(body: MagicLinkRequest, request: Request) -> MagicLinkSent:
    """Email a single-use sign-in link valid for 15 minutes."""
    deps = _deps(request)
    email = body.email.strip().lower()
    if deps.settings.sendgrid_api_key is None:
        raise ApiError(503, "email_not_configured", "Email sign-in is not configured here.")
    recent = await deps.db.fetchval(
        "SELECT count(*) FROM magic_links"
        " WHERE email = $1 AND created_at > now() - interval '1 hour'", email)
    if recent >= _LINKS_PER_HOUR:
        raise ApiError(429, "too_many_links", "Too many sign-in links for this address; "
                       "please use the newest one or try again in an hour.")
    await _consume_link_allowance(request)
    token = secrets.token_urlsafe(32)
    await deps.db.execute(
        "INSERT INTO magic_links (token_hash, email, expires_at) VALUES ($1, $2, now() + $3)",
        _hash(token), email, MAGIC_LINK_TTL)
    link = f"{str(deps.settings.public_base_url).rstrip('/')}/auth/verify?token={token}"
    try:
        await send_email(
            deps.settings, to=email, subject="Your ChainLens sign-in link",
            text=f"Sign in to ChainLens: {link}\n\nThe link works once, for 15 minutes. "
                 "If you did not ask for it, ignore this email.",
            html=f'<p><a href="{link}">Sign in to ChainLens</a></p><p>The link works once, '
                 "for 15 minutes. If you did not ask for it, ignore this email.</p>")
    except EmailNotConfigured:
        raise ApiError(503, "email_not_configured", "Email sign-in is not configured here.") from None
    except EmailFailed:
        raise ApiError(503, "email_failed", "We could not send the email; please try again.") from None
    return MagicLinkSent(sent=True)


def _signin_page(title: str, body: str, status: int = 200) -> HTMLResponse:
    page = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{html.escape(title)}</title><link rel="stylesheet" href="/static/page.css">'
            f'</head><body><main><p><a href="/">← ChainLens</a></p><h1>{html.escape(title)}</h1>'
            f"{body}</main></body></html>")
    return HTMLResponse(page, status_code=status,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


_INVALID_LINK = ("<p>This sign-in link is invalid, used or expired. "
                 '<a href="/account">Ask for a new one on the account page.</a></p>')


async def _consume_link_allowance(request: Request) -> QuotaDecision:
    """One sign-in e-mail from this client network and from the service's daily total."""
    deps = _deps(request)
    settings = deps.settings
    per_ip, total = settings.magic_links_per_ip_daily, settings.magic_links_daily
    try:
        decision = await consume_limits(
            deps,
            Bucket(f"magic-ip:{client_ip(request)}", min(per_ip, _LINKS_PER_IP_MINUTE), per_ip),
            Bucket("magic-all", min(total, _LINKS_PER_MINUTE), total))
    except QuotaUnavailable:
        raise ApiError(503, "email_unavailable",
                       "Sign-in e-mails are paused for a moment; please try again.") from None
    if not decision.allowed:
        raise ApiError(429, "too_many_links",
                       "Too many sign-in links were requested from here; please try again "
                       "later.", headers=rate_limit_headers(decision))
    return decision


@router.get("/auth/verify", include_in_schema=False)
async def verify_magic_link_page(request: Request, token: str = "") -> HTMLResponse:
    """The page an emailed link opens: it signs in only when its button is pressed (a POST),
    so neither a link scanner nor another site's GET can sign anyone in."""
    deps = _deps(request)
    email = await deps.db.fetchval(
        "SELECT email FROM magic_links WHERE token_hash = $1 AND used_at IS NULL"
        " AND expires_at > now()", _hash(token[:100]))
    if email is None:
        return _signin_page("Sign-in link", _INVALID_LINK, status=400)
    # One value per browser: two tabs opened from the same email both work.
    csrf = request.cookies.get(_SIGNIN_COOKIE, "")
    if not re.fullmatch(r"[\w-]{32}", csrf):
        csrf = secrets.token_urlsafe(24)
    response = _signin_page("Sign in to ChainLens", (
        f"<p>Sign in as <strong>{html.escape(email)}</strong>?</p>"
        '<form method="post" action="/auth/verify">'
        f'<input type="hidden" name="token" value="{html.escape(token[:100])}">'
        f'<input type="hidden" name="csrf" value="{csrf}">'
        '<button type="submit">Sign in</button></form>'
        '<p class="small">If you did not ask for this link, close this page.</p>'))
    https = str(deps.settings.public_base_url).startswith("https://")
    response.set_cookie(_SIGNIN_COOKIE, csrf, max_age=int(MAGIC_LINK_TTL.total_seconds()),
                        path="/auth/verify", httponly=True, samesite="strict", secure=https)
    return response


@router.post("/auth/verify", include_in_schema=False)
async def verify_magic_link(request: Request) -> Response:
    """Use a sign-in link once, from its own page: set the session cookie, go to the account."""
    deps = _deps(request)
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    token = (form.get("token") or [""])[0][:100]
    supplied = (form.get("csrf") or [""])[0]
    expected = request.cookies.get(_SIGNIN_COOKIE, "")
    # The strict cookie only comes back from a form on our own page: another site cannot
    # post a link of its own choosing into a visitor's browser (login CSRF).
    if not expected or not hmac.compare_digest(supplied.encode(), expected.encode()):
        return _signin_page("Sign-in link", "<p>Please open the sign-in link from your email "
                            "again and press the button on that page.</p>", status=403)
    email = await deps.db.fetchval(
        """UPDATE magic_links SET used_at = now()
           WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
           RETURNING email""", _hash(token))
    if email is None:
        return _signin_page("Sign-in link", _INVALID_LINK, status=400)
    account = await sign_in_email(deps, email)
    response = RedirectResponse("/account", status_code=303)
    set_session_cookie(response, deps.settings, f"web:{email}",
                       await session_version(deps, account.id))
    return response


@router.post("/api/auth/logout", status_code=204, responses={204: {"description": "signed out"}})
async def logout(request: Request) -> Response:
    """Sign out: every session of this account stops working, on every device."""
    deps = _deps(request)
    session = request_session(request)
    if session is not None:
        await revoke_sessions(deps, session)
    response = Response(status_code=204)
    clear_session_cookie(response, deps.settings)
    return response


def _page(name: str) -> HTMLResponse:
    return HTMLResponse((STATIC_DIR / name).read_text(), headers={"Cache-Control": "no-cache"})


@router.get("/account", response_class=HTMLResponse, include_in_schema=False)
async def account_page() -> HTMLResponse:
    return _page("account.html")


@router.get("/pricing", response_class=HTMLResponse, include_in_schema=False)
async def pricing_page(request: Request) -> HTMLResponse:
    limits = _deps(request).settings.tier_limits
    html = (STATIC_DIR / "pricing.html").read_text()
    for tier, value in limits.items():
        html = html.replace(f"{{{tier}_daily}}", f"{value.daily:,}")
        html = html.replace(f"{{{tier}_minute}}", f"{value.minute:,}")
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})
