"""Billing routes: payments (Stripe), the Stripe webhook, usage, API keys and account linking."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal, TypedDict

from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from pydantic import BaseModel, Field

from billing import api_keys, payments, usage, webhooks
from billing.accounts import LINK_CODE_TTL, Account, create_link_code, redeem_link_code
from billing.errors import (
    BillingNotConfigured,
    InvalidIdentity,
    LinkCodeInvalid,
    PaymentProviderError,
    WebhookRejected,
)
from billing.quota import quota_status
from chainlens.deps import Deps
from chainlens.i18n import N_
from web.auth import (
    Caller,
    current_account,
    current_caller,
    rate_limit_headers,
    request_session,
    saved_caller,
)
from web.errors import ApiError

__all__ = ["install", "rate_limit_headers", "router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["billing"])
_PROJECT_ID = r"^[a-z0-9][a-z0-9-]{0,99}$"


def install(app: FastAPI) -> None:
    """Register the billing routes on `app` (session cookies go out through
    `web.middleware.EdgeMiddleware`)."""
    app.include_router(router)


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


CurrentAccount = Annotated[Account, Depends(current_account)]
CurrentCaller = Annotated[Caller, Depends(current_caller)]


# Messages of billing's exceptions that reach people through the account page and the widget:
# marked here so the catalogue has them, and the error handler shows them in the reader's
# language (web.errors).
_BILLING_MESSAGES = (
    N_("billing not configured"),
    N_("this link code is unknown, expired or already used"),
    N_("too many link attempts; wait a few minutes"),
)


def _not_configured(exc: BillingNotConfigured) -> ApiError:
    return ApiError(503, "billing_not_configured", str(exc))


# --- payments --------------------------------------------------------------------------------


class CheckoutRequest(BaseModel):
    tier: Literal["pro", "enterprise"]


class CheckoutResponse(BaseModel):
    checkout_url: str


class PortalResponse(BaseModel):
    portal_url: str


class SubscriptionResponse(BaseModel):
    tier: str
    status: str
    expires_at: datetime | None


@router.post("/api/payment/checkout", response_model=CheckoutResponse)
async def checkout(
    body: CheckoutRequest, request: Request, caller: CurrentCaller
) -> CheckoutResponse:
    """Start a Stripe Checkout subscription for the calling account."""
    account = (await saved_caller(request, caller)).account
    try:
        url = await payments.create_checkout(_deps(request), account, body.tier)
    except BillingNotConfigured as exc:
        raise _not_configured(exc) from exc
    except PaymentProviderError as exc:
        raise ApiError(502, "payment_provider_error", str(exc)) from exc
    return CheckoutResponse(checkout_url=url)


@router.post("/api/payment/portal", response_model=PortalResponse)
async def portal(request: Request, account: CurrentAccount) -> PortalResponse:
    """A Stripe customer-portal link to manage the subscription."""
    deps = _deps(request)
    if not deps.settings.stripe_configured:
        raise ApiError(503, "billing_not_configured", "billing not configured")
    if account.stripe_customer_id is None:
        raise ApiError(409, "no_billing_profile", N_("This account has no subscription yet."))
    try:
        url = await payments.create_portal(deps, account)
    except PaymentProviderError as exc:
        raise ApiError(502, "payment_provider_error", str(exc)) from exc
    return PortalResponse(portal_url=url)


@router.get("/api/payment/subscription", response_model=SubscriptionResponse)
async def subscription(request: Request, account: CurrentAccount) -> SubscriptionResponse:
    """The calling account's tier and subscription status."""
    return SubscriptionResponse(**await payments.subscription_summary(_deps(request), account))


@router.post("/api/stripe/webhook", responses={400: {"description": "rejected"}})
async def stripe_webhook(request: Request) -> dict[str, object]:
    """Stripe events, verified on the raw body; applied once each."""
    deps = _deps(request)
    payload = await request.body()
    try:
        event = webhooks.verify_event(
            deps.settings, payload, request.headers.get("stripe-signature")
        )
    except BillingNotConfigured as exc:
        raise _not_configured(exc) from exc
    except WebhookRejected as exc:
        raise ApiError(400, "invalid_webhook", str(exc)) from exc
    outcome = await webhooks.apply_event(deps, event)
    return {"received": True, "outcome": outcome}


# --- usage -----------------------------------------------------------------------------------


class UsageStats(BaseModel):
    daily_used: int
    daily_limit: int
    monthly_cost: float


class TrackRequest(BaseModel):
    projectId: str = Field(pattern=_PROJECT_ID)  # noqa: N815 (the seed API's field name)
    action: str = Field(default="view", max_length=50)


class ProjectUsage(BaseModel):
    projectId: str  # noqa: N815
    requests_today: int
    requests_7d: int
    requests_30d: int


@router.get("/api/usage/stats", response_model=UsageStats)
async def usage_stats(request: Request, response: Response, account: CurrentAccount) -> UsageStats:
    """Requests used today, the daily limit and this month's cost."""
    deps = _deps(request)
    decision = await quota_status(deps, account)
    response.headers.update(rate_limit_headers(decision))
    cost = await usage.monthly_cost(deps, account.id)
    return UsageStats(
        daily_used=decision.day_used, daily_limit=decision.day_limit, monthly_cost=float(cost)
    )


@router.post("/api/usage/track")
async def track(body: TrackRequest, request: Request) -> dict[str, bool]:
    """Count a project view (the seed API); does not consume quota."""
    async with _deps(request).db.acquire() as conn:
        await usage.count_project_request(conn, body.projectId)
    return {"tracked": True}


_SIGN_IN_OR_KEY = N_("Sign in or send an API key.")


async def identified_caller(request: Request, response: Response) -> Caller:
    """FastAPI dependency: an API key or a signed-in session; 401 for anyone else."""
    if not request.headers.get("authorization") and request_session(request) is None:
        raise ApiError(401, "unauthorized", _SIGN_IN_OR_KEY, headers={"WWW-Authenticate": "Bearer"})
    caller = await current_caller(request, response)
    if caller.anonymous:
        raise ApiError(401, "unauthorized", _SIGN_IN_OR_KEY, headers={"WWW-Authenticate": "Bearer"})
    return caller


@router.get(
    "/api/usage/project/{project_id}",
    response_model=ProjectUsage,
    dependencies=[Depends(identified_caller)],
)
async def project_usage(
    request: Request, project_id: Annotated[str, Path(pattern=_PROJECT_ID)]
) -> ProjectUsage:
    """Requests about one project: today, 7 and 30 days."""
    counts = await usage.project_usage(_deps(request), project_id)
    return ProjectUsage(projectId=project_id, **counts)


# --- API keys --------------------------------------------------------------------------------


class KeyCreate(BaseModel):
    name: str = Field(default="", max_length=100)


class KeyInfo(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyInfo):
    key: str


def _signed_in(caller: Caller) -> Account:
    if caller.anonymous:
        raise ApiError(403, "sign_in_required", N_("Sign in to manage API keys."))
    return caller.account


@router.post("/api/keys", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, request: Request, caller: CurrentCaller) -> KeyCreated:
    """Create an API key; the key is shown in this response only."""
    key, info = await api_keys.create_api_key(_deps(request), _signed_in(caller), body.name)
    return KeyCreated(key=key, **_fields(info))


class _KeyFields(TypedDict):
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def _fields(info: api_keys.ApiKeyInfo) -> _KeyFields:
    return {
        "id": info.id,
        "name": info.name,
        "prefix": info.prefix,
        "created_at": info.created_at,
        "revoked_at": info.revoked_at,
    }


@router.get("/api/keys")
async def list_keys(request: Request, caller: CurrentCaller) -> dict[str, list[KeyInfo]]:
    """The account's keys, by prefix only."""
    infos = await api_keys.list_api_keys(_deps(request), _signed_in(caller))
    return {"keys": [KeyInfo(**_fields(i)) for i in infos]}


@router.delete("/api/keys/{key_id}", status_code=204)
async def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request, caller: CurrentCaller
) -> Response:
    """Revoke a key at once."""
    if not await api_keys.revoke_api_key(_deps(request), _signed_in(caller), key_id):
        raise ApiError(404, "not_found", N_("No such active API key."))
    return Response(status_code=204)


# --- linking ---------------------------------------------------------------------------------


class LinkCode(BaseModel):
    code: str
    expires_in_s: int


class RedeemRequest(BaseModel):
    code: str = Field(min_length=4, max_length=20)


class LinkedAccount(BaseModel):
    account_id: int
    tier: str


@router.post("/api/link/code", response_model=LinkCode)
async def link_code(request: Request, caller: CurrentCaller) -> LinkCode:
    """A one-time code to enter in Telegram or Discord (`/link CODE`)."""
    account = (await saved_caller(request, caller)).account
    code = await create_link_code(_deps(request), account)
    return LinkCode(code=code, expires_in_s=int(LINK_CODE_TTL.total_seconds()))


@router.post("/api/link/redeem", response_model=LinkedAccount)
async def link_redeem(
    body: RedeemRequest, request: Request, caller: CurrentCaller
) -> LinkedAccount:
    """Attach this web identity to the account that issued the code."""
    try:
        account = await redeem_link_code(_deps(request), caller.identity, body.code)
    except (LinkCodeInvalid, InvalidIdentity) as exc:
        raise ApiError(400, "invalid_link_code", str(exc)) from exc
    return LinkedAccount(account_id=account.id, tier=account.tier)
