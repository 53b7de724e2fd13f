"""`GET /api/payment/checkout-link/{token}`: the link a chat bot hands out for Upgrade.

The signed token names the chat account (billing/checkout_link.py); opening it creates the
Stripe Checkout session for that account and redirects there. A browser opens it, so
failures are a short page in words, not JSON.
"""

from __future__ import annotations

import html
import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from billing import payments
from billing.accounts import get_account
from billing.checkout_link import CheckoutLinkInvalid, read_checkout_token
from billing.errors import AccountNotFound, BillingNotConfigured, PaymentProviderError
from chainlens.deps import Deps

log = logging.getLogger(__name__)
router = APIRouter(tags=["billing"], include_in_schema=False)


def _page(status: int, message: str) -> HTMLResponse:
    body = (
        "<!doctype html><meta charset=utf-8><title>ChainLens upgrade</title>"
        f"<p>{html.escape(message)}</p>"
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.get(
    "/api/payment/checkout-link/{token}",
    response_class=RedirectResponse,
    status_code=303,
    responses={400: {"description": "invalid or expired link"}},
)
async def checkout_from_link(token: str, request: Request) -> Response:
    """Start Stripe Checkout for the account a bot's signed upgrade link names."""
    deps: Deps = request.app.state.deps
    try:
        account_id, tier = read_checkout_token(deps.settings, token)
        account = await get_account(deps, account_id)
        url = await payments.create_checkout(deps, account, tier)
    except CheckoutLinkInvalid as exc:
        return _page(400, str(exc).capitalize() + ".")
    except AccountNotFound:
        return _page(400, "This upgrade link names an account that no longer exists.")
    except BillingNotConfigured:
        return _page(503, "Card payments are not configured on this server.")
    except PaymentProviderError as exc:
        log.warning("checkout link: %s", exc)
        return _page(502, "The payment provider did not respond; please try again.")
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
