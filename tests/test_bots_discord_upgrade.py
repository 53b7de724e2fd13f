"""A Discord Upgrade link: signed for the Discord account, it starts Stripe Checkout for that
account whatever browser opens it (real stripe-python against the local fake Stripe)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from billing.accounts import account_for_identity
from billing.checkout_link import checkout_link
from chainlens.deps import Deps
from conftest import make_test_settings
from tests.fake_http import running_http_server
from tests.fake_stripe import FakeStripe
from web.app import create_app
from web.auth import session_cookie_value


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[str]:
    with running_http_server(FakeStripe) as url:
        yield url


@pytest.fixture
async def stripe_deps(
    deps: Deps, database_url: str, redis_url: str, tmp_path: Path, fake_stripe: str
) -> Deps:
    settings = make_test_settings(
        database_url,
        redis_url,
        tmp_path,
        redis_prefix=deps.keys.prefix,
        stripe_secret_key="sk_test_fake",
        stripe_price_pro="price_pro",
        stripe_api_base=fake_stripe,
        secret_key="discord-test-secret-0123456789",
    )
    FakeStripe.requests.clear()
    return dataclasses.replace(deps, settings=settings)


async def _get(deps: Deps, url: str, cookies: dict[str, str] | None = None) -> httpx.Response:
    app = create_app(deps.settings, deps=deps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), cookies=cookies, base_url="http://testserver"
    ) as client:
        return await client.get(httpx.URL(url).path)


async def test_link_starts_checkout_for_the_discord_account_not_the_browsers(
    stripe_deps: Deps,
) -> None:
    account = await account_for_identity(stripe_deps, "discord:42")
    browser = await account_for_identity(stripe_deps, "web:someone@example.com")
    url = checkout_link(stripe_deps.settings, account.id)
    reply = await _get(
        stripe_deps,
        url,
        cookies={
            "cl_session": session_cookie_value(stripe_deps.settings, "web:someone@example.com")
        },
    )
    assert reply.status_code == 303
    assert reply.headers["location"] == "https://checkout.stripe.com/c/pay/cs_test_1"
    [(path, form, _)] = FakeStripe.requests
    assert path == "/v1/checkout/sessions"
    assert form["client_reference_id"] == [str(account.id)] != [str(browser.id)]
    assert form["metadata[account_id]"] == [str(account.id)]
    assert form["line_items[0][price]"] == ["price_pro"]


async def test_a_forged_link_is_refused_and_creates_nothing(stripe_deps: Deps) -> None:
    account = await account_for_identity(stripe_deps, "discord:42")
    good = checkout_link(stripe_deps.settings, account.id).rsplit("/", 1)[1]
    payload = URLSafeTimedSerializer("x").loads_unsafe(good)[1]
    forged = URLSafeTimedSerializer("another-secret", salt="chainlens-checkout-link").dumps(payload)
    reply = await _get(stripe_deps, f"/api/payment/checkout-link/{forged}")
    assert reply.status_code == 400 and "not valid" in reply.text
    assert not FakeStripe.requests


async def test_without_stripe_the_link_says_payments_are_not_configured(deps: Deps) -> None:
    account = await account_for_identity(deps, "discord:44")
    reply = await _get(deps, checkout_link(deps.settings, account.id))
    assert reply.status_code == 503 and "not configured" in reply.text
