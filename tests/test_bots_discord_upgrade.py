"""A bot's Upgrade link: signed for one chat account, short-lived, and it starts Stripe
Checkout for that account (real stripe-python against the local fake Stripe)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import make_test_settings
from itsdangerous import URLSafeTimedSerializer

from billing.accounts import account_for_identity, set_base_tier
from billing.checkout_link import (
    CHECKOUT_LINK_MAX_AGE_S,
    CheckoutLinkInvalid,
    make_checkout_link,
    read_checkout_token,
)
from chainlens.deps import Deps
from tests.fake_http import running_http_server
from tests.fake_stripe import FakeStripe
from web.app import create_app


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[str]:
    with running_http_server(FakeStripe) as url:
        yield url


@pytest.fixture
async def stripe_deps(deps: Deps, database_url: str, redis_url: str, tmp_path: Path,
                      fake_stripe: str) -> AsyncIterator[Deps]:
    settings = make_test_settings(
        database_url, redis_url, tmp_path, redis_prefix=deps.keys.prefix,
        stripe_secret_key="sk_test_fake", stripe_price_pro="price_pro",
        stripe_api_base=fake_stripe, secret_key="discord-test-secret-0123456789")
    FakeStripe.requests.clear()
    yield dataclasses.replace(deps, settings=settings)


async def _get(deps: Deps, url: str) -> httpx.Response:
    app = create_app(deps.settings, deps=deps)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        return await client.get(httpx.URL(url).path)


async def test_link_starts_checkout_for_the_discord_account(stripe_deps: Deps) -> None:
    account = await account_for_identity(stripe_deps, "discord:42")
    url = make_checkout_link(stripe_deps.settings, account.id)
    assert url.startswith(str(stripe_deps.settings.public_base_url).rstrip("/")
                          + "/api/payment/checkout-link/")
    reply = await _get(stripe_deps, url)  # no cookie: the browser's own account is irrelevant
    assert reply.status_code == 303
    assert reply.headers["location"] == "https://checkout.stripe.com/c/pay/cs_test_1"
    [(path, form, _)] = FakeStripe.requests
    assert path == "/v1/checkout/sessions"
    assert form["client_reference_id"] == [str(account.id)]
    assert form["metadata[account_id]"] == [str(account.id)]
    assert form["line_items[0][price]"] == ["price_pro"]


async def test_forged_expired_or_foreign_links_are_refused(stripe_deps: Deps) -> None:
    account = await account_for_identity(stripe_deps, "discord:42")
    forged = URLSafeTimedSerializer("another-secret", salt="checkout-link").dumps(
        {"account_id": account.id})
    reply = await _get(stripe_deps, f"/api/payment/checkout-link/{forged}")
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_checkout_link"
    token = make_checkout_link(stripe_deps.settings, account.id).rsplit("/", 1)[1]
    with pytest.raises(CheckoutLinkInvalid, match="expired"):
        read_checkout_token(stripe_deps.settings, token, max_age_s=-1)
    assert read_checkout_token(stripe_deps.settings, token) == account.id
    assert CHECKOUT_LINK_MAX_AGE_S <= 3600
    assert not FakeStripe.requests


async def test_a_paid_account_goes_to_its_account_page(stripe_deps: Deps) -> None:
    account = await account_for_identity(stripe_deps, "discord:43")
    await set_base_tier(stripe_deps, account.id, "pro")
    reply = await _get(stripe_deps, make_checkout_link(stripe_deps.settings, account.id))
    assert reply.status_code == 303 and reply.headers["location"].endswith("/account")
    assert not FakeStripe.requests


async def test_without_stripe_the_link_says_billing_is_not_configured(deps: Deps) -> None:
    account = await account_for_identity(deps, "discord:44")
    reply = await _get(deps, make_checkout_link(deps.settings, account.id))
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "billing_not_configured"
