"""The daily report on the web: archive pages, JSON, on-demand build (admin), e-mail
subscription with double opt-in, one-click unsubscribe, SendGrid's signed event webhook, and
the caller's subscriptions for the account page."""

from __future__ import annotations

import html
import json
import logging
import re
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from chainlens.deps import Deps
from chainlens.i18n import N_, Language, Localizer, as_language, localizer
from chainlens.limiter import SendLimiter
from reports import render
from reports.content import ReportContent
from reports.links import (
    LinkInvalid,
    confirm_url,
    read_confirm_token,
    read_unsubscribe_token,
)
from reports.store import get_report, list_reports
from reports.subscriptions import confirm, subscribe, subscriptions_of, unsubscribe
from web.auth import Caller, current_caller
from web.errors import ApiError
from web.i18n import page_language, para, simple_page
from web.security import require_admin

log = logging.getLogger(__name__)
router = APIRouter(tags=["reports"])
_EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}$")
_CONFIRM_RESEND_S = 600


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "bad_date", N_("The date must look like 2026-12-01.")) from None


def _edition(caller: Caller) -> render.Edition:
    return render.edition_for_tier(caller.account.tier)


def _page(loc: Localizer, title: str, body: str, status: int = 200) -> HTMLResponse:
    """A short page in `loc`'s language; `title` is an English msgid, `body` the route's HTML."""
    return HTMLResponse(
        simple_page(loc.language, loc._(title), body, back=False),
        status_code=status,
        headers={"Vary": "Cookie, Accept-Language"},
    )


async def _loc(request: Request) -> Localizer:
    return localizer(await page_language(request))


def _esc(loc: Localizer, message: str) -> str:
    return html.escape(loc._(message))


# Short labels (constants: gettext extraction does not look inside f-strings).
_GET_IT = N_("Get it every morning")
_EMAIL_LABEL = N_("E-mail")
_SUBSCRIBE = N_("Subscribe")
_SUBSCRIBE_AGAIN = N_("Subscribe again")
_ARCHIVE = N_("Archive")
_TRY_AGAIN = N_("Try again")
_CONFIRM_MINE = N_("Confirm my subscription")
_UNSUBSCRIBE = N_("Unsubscribe")
_ALL_REPORTS = N_("All reports")
_HEADLINE = N_("This is the headline edition.")


def subscribe_form(language: Language) -> str:
    """The e-mail subscription form, in `language`."""
    loc = localizer(language)
    return (
        f"<section><h2>{_esc(loc, _GET_IT)}</h2>"
        '<form method="post" action="/reports/subscribe">'
        f'<label for="email">{_esc(loc, _EMAIL_LABEL)}</label> '
        '<input id="email" name="email" type="email" required autocomplete="email"> '
        # the report's language at this address: the one the reader subscribed in
        f'<input type="hidden" name="lang" value="{language}"> '
        f'<button type="submit">{_esc(loc, _SUBSCRIBE)}</button></form>'
        '<p class="small">'
        + html.escape(
            loc._(
                "We send a confirmation link first. In Telegram or Discord, use "
                "{alpha}. Free accounts get the headline edition, Pro the full "
                "report."
            ),
            quote=False,
        ).format(alpha="<code>/alpha</code>")
        + "</p></section>"
    )


# reports.links' refusals, shown on the pages below in the reader's language.
_LINK_ERRORS = (
    N_("this unsubscribe link is not valid"),
    N_("this confirmation link has expired; subscribe again"),
    N_("this confirmation link is not valid"),
)


def _link_invalid(loc: Localizer, exc: LinkInvalid) -> HTMLResponse:
    return _page(loc, N_("Link not valid"), f"<p>{html.escape(loc._(str(exc)))}.</p>", 400)


def _again(loc: Localizer) -> str:
    return f'<a href="/reports">{_esc(loc, _SUBSCRIBE_AGAIN)}</a>'


@router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
async def reports_index(request: Request) -> HTMLResponse:
    loc = await _loc(request)
    rows = await list_reports(_deps(request))
    items = "".join(
        f'<li><a href="/reports/{d.isoformat()}">{loc.date(d)}</a> — '
        f"{html.escape(intro[:160])}</li>"
        for d, intro, _ in rows
    )
    lead = _esc(
        loc, N_("A morning note on the market and the projects people asked ChainLens about most.")
    )
    body = (
        f'<p class="lead">{lead}</p>{subscribe_form(loc.language)}'
        f"<h2>{_esc(loc, _ARCHIVE)}</h2>"
        + (f"<ul>{items}</ul>" if items else para(loc, N_("No report has been built yet.")))
    )
    return _page(loc, N_("ChainLens daily alpha"), body)


def _content_for(content: ReportContent, edition: render.Edition) -> ReportContent:
    if edition == "full":
        return content
    projects = [
        p.model_copy(update={"risk_flags": [], "risk_flags_by_language": {}})
        for p in content.projects[: render.HEADLINE_PROJECTS]
    ]
    return content.model_copy(
        update={
            "projects": projects,
            "movers": [m for m in content.movers if m in {p.id for p in projects}],
        }
    )


@router.get("/api/reports/generate", dependencies=[Depends(require_admin)])
async def generate_report(request: Request, day: str | None = None) -> dict[str, Any]:
    """Build (or rebuild) a report now (admin). The seed's shape: date, topProjects, generatedAt.
    A rebuild after delivery started re-sends nobody (delivery goes by the ledger)."""
    from reports.build import build_report
    from reports.store import save_report

    deps = _deps(request)
    content, chart = await build_report(deps, _day(day) if day else None)
    await save_report(deps, content, chart)
    return content.seed_shape()


# --- e-mail subscription ----------------------------------------------------------------------


async def _form_value(request: Request, name: str) -> str:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise ApiError(400, "bad_request", "The body is not valid JSON.") from None
        return str(body.get(name) or "") if isinstance(body, dict) else ""
    form = await request.form()
    value = form.get(name)
    return value if isinstance(value, str) else ""


@router.post("/reports/subscribe", include_in_schema=False)
async def subscribe_email(
    request: Request, caller: Caller = Depends(current_caller)
) -> HTMLResponse:
    """Subscribe an address (unconfirmed) and mail it a signed confirmation link. A signed-in
    caller subscribes for their own account (its tier picks the edition); otherwise the
    address's own web account does."""
    from billing.accounts import account_for_identity
    from chainlens.mailer import EmailFailed, EmailNotConfigured, send_email

    deps = _deps(request)
    loc = await _loc(request)
    email = (await _form_value(request, "email")).strip().lower()
    if not _EMAIL.match(email):
        return _page(
            loc,
            N_("Check the address"),
            para(
                loc,
                N_("That does not look like an e-mail address. {try_again}"),
                try_again=f'<a href="/reports">{_esc(loc, _TRY_AGAIN)}</a>',
            ),
            400,
        )
    if deps.settings.sendgrid_api_key is None:
        return _page(
            loc,
            N_("E-mail is off"),
            para(
                loc,
                N_(
                    "E-mail reports are not configured on this server (SENDGRID_API_KEY). Use "
                    "{alpha} in Telegram or Discord."
                ),
                alpha="<code>/alpha</code>",
            ),
            503,
        )
    account = (
        caller.account if not caller.anonymous else await account_for_identity(deps, f"web:{email}")
    )
    # an optional `lang` field ('en', 'vi'): the report's language at this address
    language = as_language(await _form_value(request, "lang"))
    subscription, _ = await subscribe(
        deps,
        account_id=account.id,
        channel="email",
        destination=email,
        confirmed=False,
        language=language,
    )
    if subscription.receiving:
        return _page(
            loc,
            N_("Already subscribed"),
            para(loc, N_("{email} already receives the daily report."), email=html.escape(email)),
        )
    # One confirmation mail per address per ten minutes: the form cannot be used to flood.
    fresh = await deps.redis.set(
        deps.keys("report-confirm", email), "1", nx=True, ex=_CONFIRM_RESEND_S
    )
    if fresh:
        link = confirm_url(deps.settings, email)
        confirm_text = loc._("Confirm that you want the ChainLens daily report at this address:")
        ignore = loc._("If you did not ask for it, ignore this mail: nothing will be sent.")
        text = f"{confirm_text}\n\n{link}\n\n{ignore}"
        body = (
            f"<p>{html.escape(confirm_text)}</p>"
            f'<p><a href="{html.escape(link)}">'
            f"{_esc(loc, _CONFIRM_MINE)}</a></p>"
            f"<p>{html.escape(ignore)}</p>"
        )
        try:
            # every outgoing message passes the shared limiter, confirmations included
            await SendLimiter.from_deps(deps).acquire("email", timeout_s=10)
            await send_email(
                deps.settings,
                to=email,
                subject=loc._("Confirm your ChainLens daily report"),
                text=text,
                html=body,
            )
        except (EmailFailed, EmailNotConfigured, TimeoutError) as exc:
            await deps.redis.delete(deps.keys("report-confirm", email))
            log.warning("confirmation mail not sent: %s", exc)
            return _page(
                loc,
                N_("Try again later"),
                para(
                    loc,
                    N_(
                        "We could not send the confirmation mail just now. Please try again in "
                        "a few minutes."
                    ),
                ),
                503,
            )
    return _page(
        loc,
        N_("Check your inbox"),
        para(
            loc,
            N_("We sent a confirmation link to {email}. The report starts once you click it."),
            email=html.escape(email),
        ),
    )


@router.get("/reports/confirm", include_in_schema=False)
async def confirm_email(token: str, request: Request) -> HTMLResponse:
    deps = _deps(request)
    loc = await _loc(request)
    try:
        email = read_confirm_token(deps.settings, token)
    except LinkInvalid as exc:
        return _link_invalid(loc, exc)
    found = await confirm(deps, channel="email", destination=email)
    if found is None or not found.active:
        return _page(
            loc,
            N_("Not subscribed"),
            para(
                loc,
                N_("This address is not subscribed (any more). {subscribe_again}"),
                subscribe_again=_again(loc),
            ),
            404,
        )
    return _page(
        loc,
        N_("Subscribed"),
        para(
            loc,
            N_(
                "{email} will receive the daily report. Every mail has a one-click unsubscribe "
                "link."
            ),
            email=html.escape(email),
        ),
    )


@router.get("/reports/unsubscribe", include_in_schema=False)
async def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """A one-button page (a GET must not unsubscribe: mail scanners open links)."""
    loc = await _loc(request)
    try:
        email = read_unsubscribe_token(_deps(request).settings, token)
    except LinkInvalid as exc:
        return _link_invalid(loc, exc)
    question = para(loc, N_("Stop sending the daily report to {email}?"), email=html.escape(email))
    return _page(
        loc,
        N_("Unsubscribe"),
        f'<form method="post">{question}<button '
        f'type="submit">{_esc(loc, _UNSUBSCRIBE)}</button></form>',
    )


@router.post("/reports/unsubscribe", include_in_schema=False)
async def unsubscribe_email(token: str, request: Request) -> HTMLResponse:
    """The button above and RFC 8058 one-click (`List-Unsubscribe=One-Click`); idempotent."""
    deps = _deps(request)
    loc = await _loc(request)
    try:
        email = read_unsubscribe_token(deps.settings, token)
    except LinkInvalid as exc:
        return _link_invalid(loc, exc)
    await unsubscribe(deps, channel="email", destination=email, reason="unsubscribed by link")
    return _page(
        loc,
        N_("Unsubscribed"),
        para(
            loc,
            N_("{email} will not receive the daily report any more. {subscribe_again}"),
            email=html.escape(email),
            subscribe_again=_again(loc),
        ),
    )


# --- SendGrid event webhook -------------------------------------------------------------------

_DEACTIVATING = {
    "bounce": "hard bounce",
    "dropped": "dropped by SendGrid",
    "spamreport": "marked as spam",
    "unsubscribe": "unsubscribed at SendGrid",
    "group_unsubscribe": "unsubscribed at SendGrid",
}


@router.post("/api/sendgrid/events", include_in_schema=False)
async def sendgrid_events(request: Request) -> dict[str, int]:
    """SendGrid's signed event webhook: hard bounces, drops and spam reports deactivate the
    address with the reason. Each event counts once (sg_event_id)."""
    from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader

    deps = _deps(request)
    key = deps.settings.sendgrid_webhook_public_key
    if key is None:
        raise ApiError(503, "not_configured", "SENDGRID_WEBHOOK_PUBLIC_KEY is not set.")
    payload = (await request.body()).decode("utf-8", "replace")
    signature = request.headers.get(EventWebhookHeader.SIGNATURE, "")
    timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP, "")
    try:
        valid = bool(
            signature
            and timestamp
            and EventWebhook(key.get_secret_value()).verify_signature(payload, signature, timestamp)
        )
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise ApiError(403, "bad_signature", "The event webhook signature does not verify.")
    try:
        events = json.loads(payload)
    except ValueError:
        raise ApiError(400, "bad_request", "The body is not a JSON list of events.") from None
    if not isinstance(events, list):
        raise ApiError(400, "bad_request", "The body is not a JSON list of events.")
    deactivated = 0
    for event in events:
        if not isinstance(event, dict) or not event.get("sg_event_id") or not event.get("email"):
            continue
        kind = str(event.get("event"))
        if kind == "bounce" and event.get("type") == "blocked":
            kind = "blocked"  # a soft block: SendGrid retries, the address stays
        reason = _DEACTIVATING.get(kind)
        inserted = await deps.db.fetchval(
            "INSERT INTO email_events (sg_event_id, email, event, reason) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT DO NOTHING RETURNING true",
            str(event["sg_event_id"]),
            str(event["email"]).lower(),
            kind,
            str(event.get("reason") or "")[:300] or None,
        )
        if inserted and reason is not None:
            detail = f"{reason}: {str(event.get('reason') or '')[:150]}".rstrip(": ")
            if await unsubscribe(
                deps, channel="email", destination=str(event["email"]), reason=detail
            ):
                deactivated += 1
    return {"received": len(events), "deactivated": deactivated}


# --- the caller's subscriptions (account page) -----------------------------------------------


class SubscriptionOut(BaseModel):
    id: int
    channel: str
    destination: str
    active: bool
    confirmed: bool
    deactivated_reason: str | None


@router.get("/api/reports/subscriptions", response_model=list[SubscriptionOut])
async def my_subscriptions(
    request: Request, caller: Caller = Depends(current_caller)
) -> list[SubscriptionOut]:
    subs = await subscriptions_of(_deps(request), caller.account.id)
    return [
        SubscriptionOut(
            id=s.id,
            channel=s.channel,
            destination=s.destination,
            active=s.active,
            confirmed=s.confirmed,
            deactivated_reason=s.deactivated_reason,
        )
        for s in subs
    ]


@router.delete("/api/reports/subscriptions/{subscription_id}")
async def stop_subscription(
    subscription_id: int, request: Request, caller: Caller = Depends(current_caller)
) -> dict[str, bool]:
    deps = _deps(request)
    mine = {s.id: s for s in await subscriptions_of(deps, caller.account.id)}
    found = mine.get(subscription_id)
    if found is None:
        raise ApiError(404, "not_found", N_("No such subscription on your account."))
    changed = await unsubscribe(
        deps,
        channel=found.channel,
        destination=found.destination,
        reason="unsubscribed on the account page",
    )
    return {"unsubscribed": changed}


# --- routes with a {day} parameter last, so the fixed paths above win ------------------


@router.get("/reports/{day}", response_class=HTMLResponse, include_in_schema=False)
async def report_page(
    day: str, request: Request, caller: Caller = Depends(current_caller)
) -> HTMLResponse:
    stored = await get_report(_deps(request), _day(day))
    loc = await _loc(request)
    if stored is None:
        return _page(
            loc,
            N_("No report"),
            para(
                loc,
                N_("There is no report for {day}. {all_reports}"),
                day=html.escape(day),
                all_reports=f'<a href="/reports">{_esc(loc, _ALL_REPORTS)}</a>',
            ),
            404,
        )
    edition = _edition(caller)
    chart = f"/reports/{day}/chart.png" if stored.chart_png else None
    upsell = (
        ""
        if edition == "full"
        else para(
            loc,
            N_(
                "{headline} The full report, with every project's insight and risk flags, "
                "comes with {pro}."
            ),
            headline=f"<strong>{_esc(loc, _HEADLINE)}</strong>",
            pro='<a href="/pricing">Pro</a>',
        )
    )
    page = render.web_page(
        _content_for(stored.content, edition),
        chart_src=chart,
        subscribe_form=upsell + subscribe_form(loc.language),
        edition=edition,
        loc=loc,
    )
    return HTMLResponse(page)


@router.get("/reports/{day}/chart.png", include_in_schema=False)
async def report_chart(day: str, request: Request) -> Response:
    stored = await get_report(_deps(request), _day(day))
    if stored is None or stored.chart_png is None:
        raise ApiError(404, "not_found", "No chart for that date.")
    return Response(
        stored.chart_png, media_type="image/png", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get("/api/reports/{day}")
async def report_json(
    day: str, request: Request, caller: Caller = Depends(current_caller)
) -> dict[str, Any]:
    """A stored report as JSON (the headline edition for free accounts)."""
    stored = await get_report(_deps(request), _day(day))
    if stored is None:
        raise ApiError(404, "not_found", f"There is no report for {day}.")
    edition = _edition(caller)
    content = _content_for(stored.content, edition)
    return {
        **content.model_dump(mode="json"),
        "edition": edition,
        "chartUrl": f"/reports/{day}/chart.png" if stored.chart_png else None,
        **content.seed_shape(),
    }
