"""Stripe Checkout, the customer portal and the subscription summary, via stripe-python.

A `StripeClient` is opened per call (checkout and portal are rare, user-initiated actions)
with its own httpx client, closed when the call ends; `STRIPE_API_BASE` points it elsewhere
(a proxy, or the local server the tests run). Errors: `BillingNotConfigured`,
`PaymentProviderError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import stripe

from billing.accounts import Account
from billing.errors import BillingNotConfigured, PaymentProviderError
from chainlens.deps import Deps
from chainlens.settings import Settings, TierName

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams

PAID_TIERS: tuple[TierName, ...] = ("pro", "enterprise")


def price_for(settings: Settings, tier: TierName) -> str | None:
    return {"pro": settings.stripe_price_pro, "enterprise": settings.stripe_price_enterprise}.get(
        tier
    )


def tier_for_price(settings: Settings, price_id: str | None) -> TierName | None:
    """The tier a Stripe price id sells, if it is one of ours."""
    if not price_id:
        return None
    for tier in PAID_TIERS:
        if price_for(settings, tier) == price_id:
            return tier
    return None


@asynccontextmanager
async def stripe_client(settings: Settings) -> AsyncIterator[stripe.StripeClient]:
    """A StripeClient for one operation; its HTTP connections are closed afterwards."""
    if settings.stripe_secret_key is None:
        raise BillingNotConfigured("billing not configured")
    http = stripe.HTTPXClient(timeout=settings.http_timeout_s)
    base = {"api": settings.stripe_api_base.rstrip("/")} if settings.stripe_api_base else None
    client = stripe.StripeClient(
        settings.stripe_secret_key.get_secret_value(),
        # stripe types this as its BaseAddresses TypedDict; a plain {"api": url} is what it reads
        base_addresses=base,  # type: ignore[arg-type]
        http_client=http,
        max_network_retries=1,
    )
    try:
        yield client
    except stripe.StripeError as exc:
        # Stripe's message names the problem (never the key); the code is stable for logs.
        raise PaymentProviderError(
            f"Stripe refused the request: {exc.user_message or exc.code or type(exc).__name__}"
        ) from exc
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]  # stripe leaves it unannotated


def _base_url(settings: Settings) -> str:
    return str(settings.public_base_url).rstrip("/")


async def create_checkout(deps: Deps, account: Account, tier: TierName) -> str:
    """A Checkout Session URL for a subscription to `tier`."""
    settings = deps.settings
    if settings.stripe_secret_key is None:
        raise BillingNotConfigured("billing not configured")
    price = price_for(settings, tier)
    if not price:
        raise BillingNotConfigured(f"billing not configured for the {tier} tier")
    metadata = {"account_id": str(account.id), "tier": tier}
    params: SessionCreateParams = {
        "mode": "subscription",
        "line_items": [{"price": price, "quantity": 1}],
        "client_reference_id": str(account.id),
        "success_url": _base_url(settings) + "/billing/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": _base_url(settings) + "/pricing",
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
    }
    if account.stripe_customer_id:
        params["customer"] = account.stripe_customer_id
    elif account.email:
        params["customer_email"] = account.email
    async with stripe_client(settings) as client:
        session = await client.v1.checkout.sessions.create_async(params)
    if not session.url:
        raise PaymentProviderError("Stripe returned a checkout session without a URL")
    return str(session.url)


async def create_portal(deps: Deps, account: Account) -> str:
    """A customer-portal URL; `BillingNotConfigured` until the account has a Stripe customer."""
    if account.stripe_customer_id is None:
        raise BillingNotConfigured("this account has no billing profile yet; subscribe first")
    async with stripe_client(deps.settings) as client:
        session = await client.v1.billing_portal.sessions.create_async(
            {
                "customer": account.stripe_customer_id,
                "return_url": _base_url(deps.settings) + "/account",
            }
        )
    return str(session.url)


async def subscription_summary(deps: Deps, account: Account) -> dict[str, Any]:
    """{tier, status, expires_at}: the account's tier and its most relevant subscription."""
    row = await deps.db.fetchrow(
        """
        SELECT status, current_period_end FROM subscriptions WHERE user_id = $1
        ORDER BY (ended_at IS NULL) DESC, updated_at DESC LIMIT 1
        """,
        account.id,
    )
    expires: datetime | None = row["current_period_end"] if row else None
    return {
        "tier": account.tier,
        "status": row["status"] if row else "none",
        "expires_at": expires.isoformat() if expires else None,
    }
