"""Upgrading from Telegram: a signed Checkout link for the Telegram account (never the
browser's), and Pro as a Telegram Stars subscription (pre-checkout, payment once, expiry)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import AnyHttpUrl, SecretStr
from telegram import Update

from billing.accounts import account_for_identity, get_account
from billing.checkout_link import checkout_link
from billing.telegram_stars import expire_stars_subscriptions, invoice_payload
from bots.telegram import build_application
from chainlens.deps import Deps
from tests import telegram_updates as tu
from tests.fake_bot_api import FakeBotApi, running_fake_bot_api
from tests.fake_http import running_http_server
from tests.fake_stripe import FakeStripe
from web.app import create_app
from web.auth import session_cookie_value

PRICE = 250
USER = 777


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[str]:
    with running_http_server(FakeStripe) as url:
        yield url


@pytest.fixture
async def paybot(deps: Deps, fake_stripe: str) -> AsyncIterator[tuple[FakeBotApi, Any, Deps]]:
    async with running_fake_bot_api() as (fake, base_url):
        settings = deps.settings.model_copy(
            update={
                "telegram_bot_token": SecretStr("123456:TEST-TOKEN"),
                "telegram_api_base": base_url,
                "public_base_url": AnyHttpUrl("https://chainlens.example"),
                "send_rates": {"telegram_private": (1000, 1.0)},
                "stripe_secret_key": SecretStr("sk_test_fake"),
                "stripe_price_pro": "price_pro",
                "stripe_api_base": fake_stripe,
                "telegram_stars_pro_price": PRICE,
            }
        )
        bot_deps = dataclasses.replace(deps, settings=settings)
        FakeStripe.requests.clear()
        application = build_application(bot_deps)
        async with application:
            fake.calls.clear()
            yield fake, application, bot_deps


async def send(application: Any, update: dict[str, Any]) -> None:
    await application.process_update(Update.de_json(update, application.bot))


def buttons(fake: FakeBotApi) -> dict[str, str]:
    markup = json.loads(fake.sent("sendMessage")[-1]["reply_markup"])
    return {
        b["text"]: b.get("url", b.get("callback_data"))
        for row in markup["inline_keyboard"]
        for b in row
    }


async def test_upgrade_offers_card_checkout_for_this_account_and_stars(
    paybot: tuple[FakeBotApi, Any, Deps],
) -> None:
    fake, application, deps = paybot
    await send(application, tu.message("/upgrade"))
    offer = buttons(fake)
    card = offer["💳 Pay by card"]
    assert card.startswith("https://chainlens.example/api/payment/checkout-link/")
    assert offer[f"⭐ Pay {PRICE} Stars a month"].startswith("https://t.me/")
    [invoice] = fake.sent("createInvoiceLink")
    assert invoice["currency"] == "XTR" and invoice["subscription_period"] == "2592000"
    assert json.loads(invoice["prices"])[0]["amount"] == PRICE
    telegram_account = await account_for_identity(deps, f"telegram:{USER}")
    assert invoice["payload"] == invoice_payload(deps.settings, telegram_account.id)

    # Opened in a browser signed in as someone else: Checkout is still for the Telegram account.
    await account_for_identity(deps, "web:someone@example.com")
    app = create_app(deps.settings, deps=deps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        client.cookies.set(
            "cl_session", session_cookie_value(deps.settings, "web:someone@example.com")
        )
        reply = await client.get(urlsplit(card).path)
        assert reply.status_code == 303
        assert reply.headers["location"] == "https://checkout.stripe.com/c/pay/cs_test_1"
        path, form, _ = FakeStripe.requests[-1]
        assert path == "/v1/checkout/sessions"
        assert form["client_reference_id"] == [str(telegram_account.id)]
        tampered = await client.get(urlsplit(card).path[:-3] + "abc")
        assert tampered.status_code == 400 and "not valid" in tampered.text


async def test_expired_checkout_link_is_refused(
    paybot: tuple[FakeBotApi, Any, Deps], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, deps = paybot
    account = await account_for_identity(deps, f"telegram:{USER}")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 16 * 60)  # made 16 minutes ago
    link = checkout_link(deps.settings, account.id)
    monkeypatch.setattr(time, "time", real_time)
    app = create_app(deps.settings, deps=deps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        reply = await client.get(urlsplit(link).path)
    assert reply.status_code == 400 and "expired" in reply.text
    assert FakeStripe.requests == []


async def test_pre_checkout_accepts_only_our_payload_at_our_price(
    paybot: tuple[FakeBotApi, Any, Deps],
) -> None:
    fake, application, deps = paybot
    account = await account_for_identity(deps, f"telegram:{USER}")
    good = invoice_payload(deps.settings, account.id)
    await send(application, tu.pre_checkout(good, amount=PRICE))
    await send(application, tu.pre_checkout(good[:-1] + "0", amount=PRICE))
    await send(application, tu.pre_checkout(good, amount=PRICE - 1))
    ok, forged, cheap = fake.sent("answerPreCheckoutQuery")
    assert ok["ok"] == "true"
    assert forged["ok"] == "false" and "not valid" in forged["error_message"]
    assert cheap["ok"] == "false" and "price" in cheap["error_message"]


async def test_stars_payment_grants_pro_once_and_expires_unrenewed(
    paybot: tuple[FakeBotApi, Any, Deps],
) -> None:
    fake, application, deps = paybot
    account = await account_for_identity(deps, f"telegram:{USER}")
    payload = invoice_payload(deps.settings, account.id)
    expires = int(time.time()) + 30 * 86400
    payment = tu.successful_payment(payload, amount=PRICE, charge_id="stxCHARGE1", expires=expires)
    await send(application, payment)
    await send(application, dict(payment, update_id=payment["update_id"] + 10_000))  # again
    assert (await get_account(deps, account.id)).tier == "pro"
    assert await deps.db.fetchval("SELECT count(*) FROM telegram_star_payments") == 1
    thanks = [t for t in fake.texts() if "Thank you" in t]
    assert len(thanks) == 1 and "pro" in thanks[0]
    # The period ends without a renewal payment: back to free.
    await deps.db.execute(
        "UPDATE subscriptions SET current_period_end = now() - interval '1 s'"
        " WHERE source = 'telegram_stars'"
    )
    assert await expire_stars_subscriptions(deps) == 1
    assert (await get_account(deps, account.id)).tier == "free"
    # A renewal later starts a new period on the same account.
    renewal = tu.successful_payment(
        payload, amount=PRICE, charge_id="stxCHARGE2", expires=expires + 30 * 86400
    )
    await send(application, renewal)
    assert (await get_account(deps, account.id)).tier == "pro"
    assert await expire_stars_subscriptions(deps) == 0
