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
from chainlens.i18n import N_, Language, Localizer, localizer
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
from web.i18n import (
    account_choice,
    cookie_language,
    page_language,
    para,
    render_page,
    request_language,
    simple_page,
)
from web.routes.pages import STATIC_DIR, page_response

router = APIRouter(tags=["account"])
MAGIC_LINK_TTL = timedelta(minutes=15)
_LINKS_PER_HOUR = 5  # per address
_LINKS_PER_IP_MINUTE = 3  # bursts; the daily allowances are settings
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
    language: str | None = None  # the saved choice ('en', 'vi'); None is automatic


class MagicLinkRequest(BaseModel):
    email: str = Field(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        examples=["ann@example.com"],
    )


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
                          AND stripe_subscription_id IS NOT NULL)""",
        account.id,
    )
    return AccountOut(
        tier=account.tier,
        anonymous=caller.anonymous,
        # An anonymous visitor not charged yet has no rows, only the identity in its cookie.
        identities=(await identities_of(deps, account.id)) if account.id > 0 else [caller.identity],
        daily_used=status.day_used,
        daily_limit=status.day_limit,
        monthly_cost=float(await monthly_cost(deps, account.id)),
        subscription=subscription if subscription["status"] != "none" else None,
        can_upgrade=account.tier == "free",
        can_manage_subscription=bool(stripe_subscription),
        language=account.language,
    )


@router.post(
    "/api/auth/magic-link",
    response_model=MagicLinkSent,
    responses={429: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def request_magic_link(body: MagicLinkRequest, request: Request) -> MagicLinkSent:
    """Email a single-use sign-in link valid for 15 minutes."""
    deps = _deps(request)
    email = body.email.strip().lower()
    if deps.settings.sendgrid_api_key is None:
        raise ApiError(503, "email_not_configured", _EMAIL_OFF)
    recent = await deps.db.fetchval(
        "SELECT count(*) FROM magic_links"
        " WHERE email = $1 AND created_at > now() - interval '1 hour'",
        email,
    )
    if recent >= _LINKS_PER_HOUR:
        raise ApiError(
            429,
            "too_many_links",
            N_(
                "Too many sign-in links for this address; "
                "please use the newest one or try again in "
                "an hour."
            ),
        )
    await _consume_link_allowance(request)
    token = secrets.token_urlsafe(32)
    await deps.db.execute(
        "INSERT INTO magic_links (token_hash, email, expires_at) VALUES ($1, $2, now() + $3)",
        _hash(token),
        email,
        MAGIC_LINK_TTL,
    )
    link = f"{str(deps.settings.public_base_url).rstrip('/')}/auth/verify?token={token}"
    loc = localizer(request_language(request))
    sign_in = loc._("Sign in to ChainLens")
    once = loc._(
        "The link works once, for 15 minutes. If you did not ask for it, ignore this email."
    )
    try:
        await send_email(
            deps.settings,
            to=email,
            subject=loc._("Your ChainLens sign-in link"),
            text=f"{sign_in}: {link}\n\n{once}",
            html=f'<p><a href="{link}">{html.escape(sign_in)}</a></p><p>{html.escape(once)}</p>',
        )
    except EmailNotConfigured:
        raise ApiError(503, "email_not_configured", _EMAIL_OFF) from None
    except EmailFailed:
        raise ApiError(
            503, "email_failed", N_("We could not send the email; please try again.")
        ) from None
    return MagicLinkSent(sent=True)


_EMAIL_OFF = N_("Email sign-in is not configured here.")


def _signin_page(language: Language, title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        simple_page(language, title, body),
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "Vary": "Cookie, Accept-Language",
        },
    )


def _invalid_link(loc: Localizer) -> HTMLResponse:
    ask = html.escape(loc._("Ask for a new one on the account page."))
    return _signin_page(
        loc.language,
        loc._("Sign-in link"),
        para(
            loc,
            N_("This sign-in link is invalid, used or expired. {new_link}"),
            new_link=f'<a href="/account">{ask}</a>',
        ),
        status=400,
    )


async def _consume_link_allowance(request: Request) -> QuotaDecision:
    """One sign-in e-mail from this client network and from the service's daily total."""
    deps = _deps(request)
    settings = deps.settings
    per_ip, total = settings.magic_links_per_ip_daily, settings.magic_links_daily
    try:
        decision = await consume_limits(
            deps,
            Bucket(f"magic-ip:{client_ip(request)}", min(per_ip, _LINKS_PER_IP_MINUTE), per_ip),
            Bucket("magic-all", min(total, _LINKS_PER_MINUTE), total),
        )
    except QuotaUnavailable:
        raise ApiError(
            503,
            "email_unavailable",
            N_("Sign-in e-mails are paused for a moment; please try again."),
        ) from None
    if not decision.allowed:
        raise ApiError(
            429,
            "too_many_links",
            N_("Too many sign-in links were requested from here; please try again later."),
            headers=rate_limit_headers(decision),
        )
    return decision


@router.get("/auth/verify", include_in_schema=False)
async def verify_magic_link_page(request: Request, token: str = "") -> HTMLResponse:
    """The page an emailed link opens: it signs in only when its button is pressed (a POST),
    so neither a link scanner nor another site's GET can sign anyone in."""
    deps = _deps(request)
    loc = localizer(await page_language(request))
    email = await deps.db.fetchval(
        "SELECT email FROM magic_links WHERE token_hash = $1 AND used_at IS NULL"
        " AND expires_at > now()",
        _hash(token[:100]),
    )
    if email is None:
        return _invalid_link(loc)
    # One value per browser: two tabs opened from the same email both work.
    csrf = request.cookies.get(_SIGNIN_COOKIE, "")
    if not re.fullmatch(r"[\w-]{32}", csrf):
        csrf = secrets.token_urlsafe(24)
    response = _signin_page(
        loc.language,
        loc._("Sign in to ChainLens"),
        (
            para(loc, N_("Sign in as {email}?"), email=f"<strong>{html.escape(email)}</strong>")
            + '<form method="post" action="/auth/verify">'
            f'<input type="hidden" name="token" value="{html.escape(token[:100])}">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            f'<button type="submit">{html.escape(loc._(ACCOUNT_TEXT["sign_in"]))}</button></form>'
            '<p class="small">'
            + html.escape(loc._("If you did not ask for this link, close this page."))
            + "</p>"
        ),
    )
    https = str(deps.settings.public_base_url).startswith("https://")
    response.set_cookie(
        _SIGNIN_COOKIE,
        csrf,
        max_age=int(MAGIC_LINK_TTL.total_seconds()),
        path="/auth/verify",
        httponly=True,
        samesite="strict",
        secure=https,
    )
    return response


@router.post("/auth/verify", include_in_schema=False)
async def verify_magic_link(request: Request) -> Response:
    """Use a sign-in link once, from its own page: set the session cookie, go to the account."""
    deps = _deps(request)
    loc = localizer(await page_language(request))
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    token = (form.get("token") or [""])[0][:100]
    supplied = (form.get("csrf") or [""])[0]
    expected = request.cookies.get(_SIGNIN_COOKIE, "")
    # The strict cookie only comes back from a form on our own page: another site cannot
    # post a link of its own choosing into a visitor's browser (login CSRF).
    if not expected or not hmac.compare_digest(supplied.encode(), expected.encode()):
        return _signin_page(
            loc.language,
            loc._("Sign-in link"),
            para(
                loc,
                N_(
                    "Please open the sign-in link from your email again and press the button "
                    "on that page."
                ),
            ),
            status=403,
        )
    email = await deps.db.fetchval(
        """UPDATE magic_links SET used_at = now()
           WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
           RETURNING email""",
        _hash(token),
    )
    if email is None:
        return _invalid_link(loc)
    account = await sign_in_email(deps, email)
    response = RedirectResponse("/account", status_code=303)
    set_session_cookie(
        response, deps.settings, f"web:{email}", await session_version(deps, account.id)
    )
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


ACCOUNT_TEXT: dict[str, str] = {
    "title": N_("Your ChainLens account"),
    "heading": N_("Your account"),
    "plan_usage": N_("Plan and usage"),
    "plan": N_("Plan"),
    "requests_today": N_("Requests today"),
    "cost_month": N_("Cost this month"),
    "subscription": N_("Subscription"),
    "upgrade_pro": N_("Upgrade to Pro"),
    "manage_subscription": N_("Manage subscription"),
    "signed_in": N_("Signed in"),
    "signed_in_as": N_("Signed in as {email}."),
    "sign_out": N_("Sign out"),
    "sign_in": N_("Sign in"),
    "anonymous_session": N_(
        "You are using an anonymous session. Sign in with your email to keep "
        "your account on any device."
    ),
    "email_label": N_("E-mail"),
    "email_link": N_("Email me a sign-in link"),
    "language": N_("Language"),
    "language_label": N_("Answers and pages in"),
    "automatic": N_("Automatic"),
    "save": N_("Save"),
    "language_help": N_(
        "Automatic answers each question in the language it is written in, "
        "and shows pages in your browser's language. Telegram and Discord use "
        "the same choice once they are linked."
    ),
    "linked_channels": N_("Linked channels"),
    "get_code": N_("Get a link code"),
    "link_help": N_(
        "Send {command} to the Telegram bot or Discord app within 10 minutes: every "
        "channel then shares this account and its quota."
    ),
    "have_code": N_("Have a code from another channel?"),
    "link": N_("Link"),
    "api_keys": N_("API keys"),
    "name": N_("Name"),
    "key": N_("Key"),
    "created": N_("Created"),
    "new_key_name": N_("New key name"),
    "create_key": N_("Create key"),
    "daily_report": N_("Daily report"),
    "report_help": N_(
        "Every morning in your chats or inbox ({archive_link}). In Telegram or "
        "Discord send {alpha}; for e-mail:"
    ),
    "archive": N_("archive"),
    "channel": N_("Channel"),
    "where": N_("Where"),
    "state": N_("State"),
    "subscribe": N_("Subscribe"),
    "watchlist": N_("Watchlist and alerts"),
    "watch_help": N_(
        "Shared with Telegram and Discord ({watch_command}, {alert_command}). "
        "Alerts set here are sent to your e-mail; sign in to use them."
    ),
    "project": N_("Project"),
    "watch": N_("Watch"),
    "alert": N_("Alert"),
    "new_alert": N_("New alert"),
    "set_alert": N_("Set alert"),
}

# The account page's scripts (account*.js) read these from the body's data-i18n attribute.
ACCOUNT_SCRIPT_TEXT: dict[str, str] = {
    "free": N_("Free"),
    "pro": N_("Pro"),
    "enterprise": N_("Enterprise"),
    "used_of": N_("{used} of {limit}"),
    "status_until": N_("{status} until {date}"),
    # subscription statuses as Stripe and Telegram Stars name them
    "status_active": N_("active"),
    "status_trialing": N_("trial"),
    "status_past_due": N_("payment overdue"),
    "status_unpaid": N_("unpaid"),
    "status_canceled": N_("cancelled"),
    "status_incomplete": N_("incomplete"),
    "status_incomplete_expired": N_("expired before payment"),
    "status_paused": N_("paused"),
    "status_expired": N_("expired"),
    "none": N_("none"),
    "revoke": N_("Revoke"),
    "linked": N_("Linked."),
    "check_signin": N_("Check your inbox for a sign-in link (valid 15 minutes)."),
    "new_key": N_("Your new key (shown once, copy it now): {key}"),
    "language_saved": N_("Saved. Pages and answers now follow this choice."),
    "language_sign_in": N_(
        "Sign in to save a language on your account; until then it is kept in this browser."
    ),
    "receiving": N_("receiving"),
    "waiting": N_("waiting for confirmation"),
    "stopped": N_("stopped"),
    "stopped_because": N_("stopped ({reason})"),
    "stop": N_("Stop"),
    "check_confirm": N_("Check your inbox for the confirmation link."),
    "did_not_work": N_("That did not work (HTTP {status})."),
    "upgrade": N_("Upgrade"),
    "nothing_watched": N_("Nothing watched yet."),
    "remove": N_("Remove"),
    "armed": N_("armed"),
    "fired": N_("fired, waiting to re-arm"),
    "delete": N_("Delete"),
    "added": N_("{project} added."),
    "already": N_("{project} was already on your watchlist."),
    "alert_set": N_("Alert set: {alert}"),
}

PRICING_TEXT: dict[str, str] = {
    "title": N_("ChainLens pricing"),
    "plans": N_("Plans"),
    "one_account": N_("One account and one quota on every channel: Telegram, Discord and the web."),
    "plan": N_("Plan"),
    "per_day": N_("Requests per day"),
    "per_minute": N_("Requests per minute"),
    "free": N_("Free"),
    "pro": N_("Pro"),
    "enterprise": N_("Enterprise"),
    "upgrade_pro": N_("Upgrade to Pro"),
    "manage_any_time": N_("Manage or cancel any time from {account_link}."),
    "your_account": N_("your account"),
}

PRICING_SCRIPT_TEXT: dict[str, str] = {
    "free": N_("Free"),
    "pro": N_("Pro"),
    "enterprise": N_("Enterprise"),
    "on_plan": N_("You are on the {plan} plan."),
    "manage": N_("Manage or cancel it from your account."),
    "unavailable": N_("Upgrades are not available right now."),
}


def _link(href: str, text: str) -> str:
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


@router.get("/account", response_class=HTMLResponse, include_in_schema=False)
async def account_page(request: Request) -> HTMLResponse:
    language = await page_language(request)
    loc = localizer(language)
    # The account's own choice (not the cookie's or the browser's): what the selector shows.
    saved = await account_choice(request) or cookie_language(request)
    page = render_page(
        (STATIC_DIR / "account.html").read_text(),
        language,
        ACCOUNT_TEXT,
        {
            "email": '<strong id="email-now"></strong>',
            "command": "<code>/link CODE</code>",
            "archive_link": _link("/reports", loc._(ACCOUNT_TEXT["archive"])),
            "alpha": "<code>/alpha</code>",
            "watch_command": "<code>/watch</code>",
            "alert_command": "<code>/alert</code>",
            "lang_saved": saved or "auto",
        },
        ACCOUNT_SCRIPT_TEXT,
    )
    return page_response(page)


@router.get("/pricing", response_class=HTMLResponse, include_in_schema=False)
async def pricing_page(request: Request) -> HTMLResponse:
    language = await page_language(request)
    loc = localizer(language)
    numbers: dict[str, str] = {}
    for tier, value in _deps(request).settings.tier_limits.items():
        numbers[f"{tier}_daily"] = loc.number(value.daily)
        numbers[f"{tier}_minute"] = loc.number(value.minute)
    numbers["account_link"] = _link("/account", loc._(PRICING_TEXT["your_account"]))
    page = render_page(
        (STATIC_DIR / "pricing.html").read_text(),
        language,
        PRICING_TEXT,
        numbers,
        PRICING_SCRIPT_TEXT,
    )
    return page_response(page)
