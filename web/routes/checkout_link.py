"""`GET /api/payment/checkout-link/{token}`: a bot's Upgrade link becomes a Stripe Checkout
session for the chat account the signed token names, then redirects there."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from billing import payments
from billing.accounts import get_account
from billing.checkout_link import CheckoutLinkInvalid, read_checkout_token
from billing.errors import AccountNotFound, BillingNotConfigured, PaymentProviderError
from chainlens.deps import Deps
from web.errors import ApiError

router = APIRouter(tags=["billing"])


@router.get("/api/payment/checkout-link/{token}", status_code=303,
            response_class=RedirectResponse,
            responses={303: {"description": "redirect to Stripe Checkout"}})
async def checkout_link(token: str, request: Request) -> RedirectResponse:
    """Start Pro Checkout for the account a bot's signed Upgrade link names."""
    deps: Deps = request.app.state.deps
    try:
        account = await get_account(deps, read_checkout_token(deps.settings, token))
    except CheckoutLinkInvalid as exc:
        raise ApiError(400, "invalid_checkout_link", str(exc)) from exc
    except AccountNotFound as exc:
        raise ApiError(404, "account_not_found", "That account no longer exists.") from exc
    if account.tier != "free":
        return RedirectResponse(str(deps.settings.public_base_url).rstrip("/") + "/account",
                                status_code=303)
    try:
        url = await payments.create_checkout(deps, account, "pro")
    except BillingNotConfigured as exc:
        raise ApiError(503, "billing_not_configured", str(exc)) from exc
    except PaymentProviderError as exc:
        raise ApiError(502, "payment_provider_error", str(exc)) from exc
    return RedirectResponse(url, status_code=303)
