"""Stripe: the real stripe-python client against a local Stripe stand-in, and webhooks signed
with Stripe's real scheme, delivered through the HTTP API."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing.accounts import account_for_identity, get_account
from billing.webhooks import apply_event
from chainlens.deps import Deps
from conftest import make_test_settings
from tests.fake_http import running_http_server
from tests.fake_stripe import FakeStripe
from web.app import create_app
from web.auth import session_cookie_value

SECRET = "whsec_test_secret_0123456789"


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[str]:
    with running_http_server(FakeStripe) as url:
        yield url


@pytest.fixture
async def sdeps(
    deps: Deps, database_url: str, redis_url: str, tmp_path: Path, fake_stripe: str
) -> Deps:
    settings = make_test_settings(
        database_url,
        redis_url,
        tmp_path,
        redis_prefix=deps.keys.prefix,
        stripe_secret_key="sk_test_fake",
        stripe_webhook_secret=SECRET,
        stripe_price_pro="price_pro",
        stripe_price_enterprise="price_ent",
        stripe_api_base=fake_stripe,
    )
    FakeStripe.requests.clear()
    return dataclasses.replace(deps, settings=settings)


@pytest.fixture
async def client(sdeps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(sdeps.settings, deps=sdeps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


def sign(payload: bytes, secret: str = SECRET, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def sub_event(
    event_id: str, kind: str, created: int, *, account_id: int, sub_id: str, status: str, price: str
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": f"customer.subscription.{kind}",
        "created": created,
        "data": {
            "object": {
                "id": sub_id,
                "object": "subscription",
                "customer": f"cus_{sub_id}",
                "status": status,
                "metadata": {"account_id": str(account_id)},
                "items": {
                    "object": "list",
                    "data": [{"price": {"id": price}, "current_period_end": created + 2592000}],
                },
            }
        },
    }


def invoice_event(
    event_id: str, kind: str, created: int, *, account_id: int, sub_id: str, price: str
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": f"invoice.{kind}",
        "created": created,
        "data": {
            "object": {
                "id": f"in_{event_id}",
                "object": "invoice",
                "customer": f"cus_{sub_id}",
                "parent": {
                    "subscription_details": {
                        "subscription": sub_id,
                        "metadata": {"account_id": str(account_id)},
                    }
                },
                "lines": {
                    "data": [
                        {
                            "pricing": {"price_details": {"price": price}},
                            "period": {"end": created + 2592000},
                        }
                    ]
                },
            }
        },
    }


async def _post(client: httpx.AsyncClient, event: dict[str, Any], **sign_kw: Any) -> httpx.Response:
    payload = json.dumps(event).encode()
    return await client.post(
        "/api/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": sign(payload, **sign_kw)},
    )


async def test_checkout_calls_stripe_with_account_and_price(
    sdeps: Deps, client: httpx.AsyncClient
) -> None:
    account = await account_for_identity(sdeps, "web:buyer@example.com")
    client.cookies.set("cl_session", session_cookie_value(sdeps.settings, "web:buyer@example.com"))
    reply = await client.post("/api/payment/checkout", json={"tier": "pro"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"checkout_url": "https://checkout.stripe.com/c/pay/cs_test_1"}
    path, form, headers = FakeStripe.requests[-1]
    assert path == "/v1/checkout/sessions"
    assert headers["Authorization"] == "Bearer sk_test_fake"
    assert form["mode"] == ["subscription"] and form["line_items[0][price]"] == ["price_pro"]
    assert form["client_reference_id"] == [str(account.id)]
    assert form["customer_email"] == ["buyer@example.com"] and "customer" not in form

    # after checkout completes, the Stripe customer is reused and the portal opens
    done = {
        "id": "evt_cs",
        "object": "event",
        "type": "checkout.session.completed",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": "cs_test_1",
                "object": "checkout.session",
                "customer": "cus_A",
                "subscription": "sub_A",
                "client_reference_id": str(account.id),
                "payment_status": "paid",
                "metadata": {"tier": "pro"},
            }
        },
    }
    assert (await _post(client, done)).status_code == 200
    assert (await get_account(sdeps, account.id)).tier == "pro"
    await client.post("/api/payment/checkout", json={"tier": "enterprise"})
    form = FakeStripe.requests[-1][1]
    assert form["customer"] == ["cus_A"] and form["line_items[0][price]"] == ["price_ent"]
    portal = await client.post("/api/payment/portal")
    assert portal.json() == {"portal_url": "https://billing.stripe.com/p/session/test_1"}
    assert FakeStripe.requests[-1][1]["customer"] == ["cus_A"]
    sub = (await client.get("/api/payment/subscription")).json()
    assert sub["tier"] == "pro" and sub["status"] == "active"


async def test_without_stripe_keys_checkout_is_503_and_rest_works(deps: Deps) -> None:
    app = create_app(deps.settings, deps=deps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        reply = await c.post("/api/payment/checkout", json={"tier": "pro"})
        assert reply.status_code == 503
        assert reply.json()["error"]["message"] == "billing not configured"
        assert (await c.get("/api/payment/subscription")).json()["tier"] == "free"
        assert (await c.get("/api/usage/stats")).status_code == 200


@pytest.mark.parametrize(
    "case", ["tampered", "wrong_secret", "missing", "stale", "future", "garbage"]
)
async def test_bad_webhooks_are_400_and_change_nothing(
    sdeps: Deps, client: httpx.AsyncClient, case: str
) -> None:
    account = await account_for_identity(sdeps, "telegram:500")
    event = sub_event(
        "evt_bad",
        "created",
        int(time.time()),
        account_id=account.id,
        sub_id="sub_bad",
        status="active",
        price="price_pro",
    )
    payload = json.dumps(event).encode()
    headers = {"Stripe-Signature": sign(payload)}
    if case == "tampered":
        payload = payload.replace(b"price_pro", b"price_ent")
    elif case == "wrong_secret":
        headers["Stripe-Signature"] = sign(payload, secret="whsec_other")
    elif case == "missing":
        headers = {}
    elif case == "stale":
        headers["Stripe-Signature"] = sign(payload, t=int(time.time()) - 301)
    elif case == "future":
        headers["Stripe-Signature"] = sign(payload, t=int(time.time()) + 3600)
    else:
        payload = b"not json"
        headers["Stripe-Signature"] = sign(payload)
    reply = await client.post("/api/stripe/webhook", content=payload, headers=headers)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "invalid_webhook"
    assert await sdeps.db.fetchval("SELECT count(*) FROM stripe_events") == 0
    assert await sdeps.db.fetchval("SELECT count(*) FROM subscriptions") == 0
    assert (await get_account(sdeps, account.id)).tier == "free"


async def test_duplicate_deliveries_change_state_once(
    sdeps: Deps, client: httpx.AsyncClient
) -> None:
    account = await account_for_identity(sdeps, "telegram:600")
    now = int(time.time())
    created = sub_event(
        "evt_dup",
        "created",
        now,
        account_id=account.id,
        sub_id="sub_dup",
        status="active",
        price="price_pro",
    )
    replies = [await _post(client, created) for _ in range(5)]
    replies += await asyncio.gather(*(_post(client, created) for _ in range(5)))
    assert all(r.status_code == 200 for r in replies)
    outcomes = [r.json()["outcome"] for r in replies]
    assert outcomes.count("duplicate") == 9
    assert await sdeps.db.fetchval("SELECT count(*) FROM stripe_events") == 1
    assert await sdeps.db.fetchval("SELECT count(*) FROM subscriptions") == 1
    assert (await get_account(sdeps, account.id)).tier == "pro"


async def test_every_ordering_ends_in_the_right_tier(sdeps: Deps) -> None:
    t = int(time.time()) - 1000
    for with_delete in (False, True):
        names = ["created", "paid", "updated"] + (["deleted"] if with_delete else [])
        for n, order in enumerate(itertools.permutations(names)):
            account = await account_for_identity(sdeps, f"discord:{7000 + n + 100 * with_delete}")
            sub_id = f"sub_{with_delete}_{n}"
            kw = {"account_id": account.id, "sub_id": sub_id}
            events = {
                "created": sub_event(
                    f"e1{sub_id}", "created", t, status="incomplete", price="price_pro", **kw
                ),
                "paid": invoice_event(f"e2{sub_id}", "paid", t + 5, price="price_pro", **kw),
                "updated": sub_event(
                    f"e3{sub_id}", "updated", t + 10, status="active", price="price_ent", **kw
                ),
                "deleted": sub_event(
                    f"e4{sub_id}", "deleted", t + 20, status="canceled", price="price_ent", **kw
                ),
            }
            for name in order:
                await apply_event(sdeps, events[name])
            tier = (await get_account(sdeps, account.id)).tier
            expected = "free" if with_delete else "enterprise"
            assert tier == expected, f"order {order} gave {tier}"
            if with_delete:
                # a late replay of an older 'active' snapshot never re-grants access
                late = sub_event(
                    f"e5{sub_id}", "updated", t + 30, status="active", price="price_ent", **kw
                )
                await apply_event(sdeps, late)
                assert (await get_account(sdeps, account.id)).tier == "free"


async def test_payment_failed_then_paid(sdeps: Deps) -> None:
    account = await account_for_identity(sdeps, "telegram:700")
    t = int(time.time()) - 100
    kw = {"account_id": account.id, "sub_id": "sub_f"}
    await apply_event(
        sdeps, sub_event("f1", "created", t, status="active", price="price_pro", **kw)
    )
    await apply_event(sdeps, invoice_event("f2", "payment_failed", t + 5, price="price_pro", **kw))
    status = await sdeps.db.fetchval(
        "SELECT status FROM subscriptions WHERE stripe_subscription_id = 'sub_f'"
    )
    assert status == "past_due"
    assert (await get_account(sdeps, account.id)).tier == "pro"  # Stripe is still retrying
    await apply_event(sdeps, invoice_event("f3", "paid", t + 9, price="price_pro", **kw))
    status = await sdeps.db.fetchval(
        "SELECT status FROM subscriptions WHERE stripe_subscription_id = 'sub_f'"
    )
    assert status == "active"
