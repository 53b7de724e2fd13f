"""Watchlist and alerts on the web and in the API (the same service as the chat commands).

`GET/POST/DELETE /api/watchlist`, `GET/POST /api/alerts`, `DELETE /api/alerts/{id}`. A
watchlist and alerts belong to an account, so an anonymous visitor is asked to sign in (401);
API-key callers use the key's account. Alerts set here are delivered by e-mail to the
account's address. State-changing requests are same-origin only (web/middleware.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from billing.accounts import identity_kind
from billing.checkout_link import checkout_link
from chainlens.deps import Deps
from chainlens.i18n import N_, localizer
from reports import watch
from tools.results import Project
from web.auth import Caller, current_caller
from web.errors import ApiError
from web.i18n import request_language

router = APIRouter(tags=["watchlist"])


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


def _signed_in(caller: Caller) -> Caller:
    if caller.anonymous:
        raise ApiError(401, "sign_in_required", N_("Sign in to keep a watchlist and set alerts."))
    return caller


class ProjectOut(BaseModel):
    id: str
    symbol: str
    name: str
    display: str


class WatchItemOut(BaseModel):
    project_id: str
    display: str
    added_at: datetime


class WatchIn(BaseModel):
    project: str = Field(
        min_length=1,
        max_length=watch.MAX_QUERY_CHARS,
        description="a name, ticker, $TICKER or contract address",
    )


class WatchOut(BaseModel):
    project: ProjectOut
    added: bool


class UnwatchOut(BaseModel):
    project: ProjectOut
    removed: bool


class AlertOut(BaseModel):
    id: int
    project_id: str
    display: str
    kind: str
    level: float | None
    channel: str
    destination: str
    armed: bool
    created_at: datetime
    last_fired_at: datetime | None
    description: str


class AlertIn(BaseModel):
    """Either `alert` in the chat command's words ("BTC above 70000", "SOL move 10%") or
    `project` with `kind` and `level`."""

    alert: str | None = Field(default=None, max_length=watch.MAX_QUERY_CHARS)
    project: str | None = Field(default=None, max_length=watch.MAX_QUERY_CHARS)
    kind: Literal["above", "below", "move", "risk", "sentiment"] | None = None
    level: float | None = None


def _project(p: Project) -> ProjectOut:
    return ProjectOut(id=p.id, symbol=p.symbol, name=p.name, display=p.display)


def _alert(a: watch.Alert) -> AlertOut:
    return AlertOut(
        id=a.id,
        project_id=a.project_id,
        display=a.display,
        kind=a.kind,
        level=a.level,
        channel=a.channel,
        destination=a.destination,
        armed=a.armed,
        created_at=a.created_at,
        last_fired_at=a.last_fired_at,
        description=watch.describe(a),
    )


def _error(request: Request, caller: Caller, exc: watch.WatchError) -> ApiError:
    """The service's error as an API error, worded in the caller's language."""
    deps = _deps(request)
    text = exc.text(localizer(request_language(request)))
    if isinstance(exc, watch.UnknownProject):
        return ApiError(
            404,
            "unknown_project",
            text,
            details={"suggestions": [_project(p).model_dump() for p in exc.suggestions]},
        )
    if isinstance(exc, watch.LimitReached):
        details: dict[str, object] = {"kind": exc.kind, "limit": exc.limit, "tier": exc.tier}
        if exc.tier != "enterprise":
            details["upgrade_url"] = checkout_link(deps.settings, caller.account.id)
        return ApiError(403, "limit_reached", text, details=details)
    return ApiError(400, "bad_request", text)


@router.get("/api/watchlist", response_model=list[WatchItemOut])
async def get_watchlist(
    request: Request, caller: Caller = Depends(current_caller)
) -> list[WatchItemOut]:
    items = await watch.watchlist(_deps(request), _signed_in(caller).account.id)
    return [
        WatchItemOut(project_id=i.project_id, display=i.display, added_at=i.added_at) for i in items
    ]


@router.post("/api/watchlist", response_model=WatchOut)
async def add_to_watchlist(
    body: WatchIn, request: Request, caller: Caller = Depends(current_caller)
) -> WatchOut:
    deps = _deps(request)
    try:
        project, added = await watch.watch(deps, _signed_in(caller).account.id, body.project)
    except watch.WatchError as exc:
        raise _error(request, caller, exc) from None
    return WatchOut(project=_project(project), added=added)


@router.delete("/api/watchlist", response_model=UnwatchOut)
async def remove_from_watchlist(
    project: str, request: Request, caller: Caller = Depends(current_caller)
) -> UnwatchOut:
    """`?project=` a name, ticker or the id the watchlist shows."""
    deps = _deps(request)
    try:
        found, removed = await watch.unwatch(deps, _signed_in(caller).account.id, project)
    except watch.WatchError as exc:
        raise _error(request, caller, exc) from None
    return UnwatchOut(project=_project(found), removed=removed)


@router.get("/api/alerts", response_model=list[AlertOut])
async def get_alerts(request: Request, caller: Caller = Depends(current_caller)) -> list[AlertOut]:
    alerts = await watch.alerts_of(_deps(request), _signed_in(caller).account.id)
    return [_alert(a) for a in alerts]


def _email_of(caller: Caller) -> str:
    if identity_kind(caller.identity) == "web":
        return caller.identity.partition(":")[2]
    if caller.account.email:
        return caller.account.email
    raise ApiError(
        400,
        "no_email",
        N_(
            "Alerts set on the web are sent by e-mail, and this "
            "account has no e-mail address. Set alerts in Telegram "
            "or Discord instead."
        ),
    )


@router.post("/api/alerts", response_model=AlertOut, status_code=201)
async def set_alert(
    body: AlertIn, request: Request, caller: Caller = Depends(current_caller)
) -> AlertOut:
    deps = _deps(request)
    account_id = _signed_in(caller).account.id
    try:
        if body.alert:
            query, spec = watch.parse_alert(body.alert)
        elif body.project and body.kind:
            query, spec = (
                body.project,
                watch.AlertSpec(
                    body.kind,
                    None
                    if body.kind == "risk"
                    else (
                        body.level
                        if body.level is not None
                        else watch.DEFAULT_SENTIMENT_SWING
                        if body.kind == "sentiment"
                        else None
                    ),
                ),
            )
            if spec.level is None and spec.kind != "risk":
                raise watch.WatchError(f"Give a level for a {spec.kind} alert.")
        else:
            raise watch.WatchError(f"Say which alert. {watch.ALERT_USAGE}")
        alert = await watch.create_alert(
            deps, account_id, query, spec, channel="email", destination=_email_of(caller)
        )
    except watch.WatchError as exc:
        raise _error(request, caller, exc) from None
    return _alert(alert)


@router.delete("/api/alerts/{alert_id}")
async def remove_alert(
    alert_id: int, request: Request, caller: Caller = Depends(current_caller)
) -> dict[str, bool]:
    deleted = await watch.delete_alert(_deps(request), _signed_in(caller).account.id, alert_id)
    if not deleted:
        raise ApiError(404, "not_found", N_("No such alert on your account."))
    return {"deleted": True}
