"""E-mail subscription: double opt-in, one-click unsubscribe, SendGrid's signed event webhook."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import date

import httpx
import pytest

from chainlens.deps import Deps
from reports.subscriptions import get_subscription
from tests.fake_delivery_env import Fakes, delivery_deps, drain, running_fakes
from tests.fake_delivery_sendgrid import WebhookSigner
from tests.fake_delivery_sources import ReportSources
from tests.test_reports_delivery import built

DAY = date(2026, 12, 1)


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with running_fakes() as running:
        yield running


@pytest.fixture
def signer() -> WebhookSigner:
    return WebhookSigner()


@pytest.fixture
async def edeps(deps: Deps, fakes: Fakes, signer: WebhookSigner) -> AsyncIterator[Deps]:
    from pydantic import SecretStr

    async with delivery_deps(
        deps, fakes, ReportSources(), sendgrid_webhook_public_key=SecretStr(signer.public_key)
    ) as opened:
        yield opened


@pytest.fixture
async def web(edeps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    from web.app import create_app

    app = create_app(edeps.settings, deps=edeps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


def link_in(text: str, path: str) -> str:
    match = re.search(r"https?://[^\s\"<>]+" + re.escape(path) + r"\?token=[A-Za-z0-9_.\-]+", text)
    assert match, text
    return match.group(0).split("://", 1)[1].split("/", 1)[1]


async def test_double_opt_in_then_report_then_one_click_unsubscribe(
    edeps: Deps, fakes: Fakes, web: httpx.AsyncClient
) -> None:
    await built(edeps)
    sent = await web.post("/reports/subscribe", data={"email": " Ann@Example.com "})
    assert sent.status_code == 200 and "Check your inbox" in sent.text
    again = await web.post("/reports/subscribe", data={"email": "ann@example.com"})
    assert again.status_code == 200
    confirmations = fakes.sendgrid.to("ann@example.com")
    assert len(confirmations) == 1  # one confirmation mail per address per ten minutes

    # unconfirmed: the report goes to nobody
    from reports.deliver import broadcast_report

    summary = await broadcast_report(edeps, DAY)
    assert summary.added == 0
    await drain(edeps, DAY.isoformat())
    assert len(fakes.sendgrid.to("ann@example.com")) == 1

    confirm = await web.get("/" + link_in(confirmations[0].text, "/reports/confirm"))
    assert confirm.status_code == 200 and "will receive the daily report" in confirm.text
    tampered = await web.get("/reports/confirm", params={"token": "abc.def"})
    assert tampered.status_code == 400

    await broadcast_report(edeps, DAY)
    await drain(edeps, DAY.isoformat())
    report = fakes.sendgrid.to("ann@example.com")[1]
    assert report.subject.startswith("ChainLens daily alpha")
    unsubscribe_path = "/" + link_in(report.html, "/reports/unsubscribe")
    assert report.headers["List-Unsubscribe"] == f"<http://localhost:8000{unsubscribe_path}>"
    assert report.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe_path in report.text

    page = await web.get(unsubscribe_path)  # a GET (mail scanner) does not unsubscribe
    assert page.status_code == 200 and "<form" in page.text
    sub = await get_subscription(edeps, channel="email", destination="ann@example.com")
    assert sub is not None and sub.receiving
    for _ in range(2):  # one-click POST (RFC 8058), no login, idempotent
        done = await web.post(
            unsubscribe_path,
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200 and "will not receive" in done.text
    sub = await get_subscription(edeps, channel="email", destination="ann@example.com")
    assert sub is not None and not sub.active
    assert sub.deactivated_reason == "unsubscribed by link"
    bad = await web.post("/reports/unsubscribe", params={"token": "x" + unsubscribe_path[-10:]})
    assert bad.status_code == 400


async def test_subscribe_form_refuses_bad_addresses(web: httpx.AsyncClient, edeps: Deps) -> None:
    response = await web.post("/reports/subscribe", data={"email": "not-an-address"})
    assert response.status_code == 400
    assert await edeps.db.fetchval("SELECT count(*) FROM report_subscribers") == 0


async def test_signed_event_webhook_deactivates_hard_bounces_once(
    edeps: Deps, web: httpx.AsyncClient, signer: WebhookSigner
) -> None:
    from tests.fake_delivery_env import add_subscriber

    await add_subscriber(edeps, "email", "gone@example.com")
    await add_subscriber(edeps, "email", "spam@example.com")
    await add_subscriber(edeps, "email", "soft@example.com")
    events = [
        {
            "email": "gone@example.com",
            "event": "bounce",
            "type": "bounce",
            "reason": "550 5.1.1 user unknown",
            "sg_event_id": "ev-1",
            "timestamp": 1,
        },
        {"email": "spam@example.com", "event": "spamreport", "sg_event_id": "ev-2", "timestamp": 1},
        {
            "email": "soft@example.com",
            "event": "bounce",
            "type": "blocked",
            "sg_event_id": "ev-3",
            "timestamp": 1,
        },
        {"email": "soft@example.com", "event": "delivered", "sg_event_id": "ev-4", "timestamp": 1},
    ]
    body = json.dumps(events).encode()
    forged = await web.post(
        "/api/sendgrid/events", content=body, headers=WebhookSigner().headers(body)
    )
    assert forged.status_code == 403
    unsigned = await web.post(
        "/api/sendgrid/events", content=body, headers={"content-type": "application/json"}
    )
    assert unsigned.status_code == 403
    assert await edeps.db.fetchval("SELECT count(*) FROM email_events") == 0

    ok = await web.post("/api/sendgrid/events", content=body, headers=signer.headers(body))
    assert ok.status_code == 200 and ok.json() == {"received": 4, "deactivated": 2}
    again = await web.post("/api/sendgrid/events", content=body, headers=signer.headers(body))
    assert again.json() == {"received": 4, "deactivated": 0}
    gone = await get_subscription(edeps, channel="email", destination="gone@example.com")
    assert gone is not None and not gone.active
    assert gone.deactivated_reason == "hard bounce: 550 5.1.1 user unknown"
    spam = await get_subscription(edeps, channel="email", destination="spam@example.com")
    assert spam is not None and spam.deactivated_reason == "marked as spam"
    soft = await get_subscription(edeps, channel="email", destination="soft@example.com")
    assert soft is not None and soft.active


async def test_account_lists_and_stops_its_subscriptions(
    edeps: Deps, web: httpx.AsyncClient
) -> None:
    from billing.accounts import account_for_identity
    from reports.subscriptions import subscribe
    from tests.conftest import paid_api_key

    key = await paid_api_key(edeps, "pro")
    account = await account_for_identity(edeps, "web:pro-user@example.com")
    sub, _ = await subscribe(edeps, account_id=account.id, channel="telegram", destination="-42")
    headers = {"Authorization": f"Bearer {key}"}
    listed = (await web.get("/api/reports/subscriptions", headers=headers)).json()
    assert [(s["channel"], s["destination"], s["active"]) for s in listed] == [
        ("telegram", "-42", True)
    ]
    other = await web.delete(f"/api/reports/subscriptions/{sub.id}")  # anonymous caller
    assert other.status_code == 404
    stopped = await web.delete(f"/api/reports/subscriptions/{sub.id}", headers=headers)
    assert stopped.json() == {"unsubscribed": True}
    listed = (await web.get("/api/reports/subscriptions", headers=headers)).json()
    assert listed[0]["active"] is False


async def test_a_signed_in_pro_subscribes_for_their_own_account(
    edeps: Deps, web: httpx.AsyncClient
) -> None:
    from billing.accounts import account_for_identity
    from tests.conftest import paid_api_key

    key = await paid_api_key(edeps, "pro")
    pro = await account_for_identity(edeps, "web:pro-user@example.com")
    sent = await web.post(
        "/reports/subscribe",
        data={"email": "work@example.com"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert sent.status_code == 200
    owner = await edeps.db.fetchval(
        "SELECT user_id FROM report_subscribers WHERE destination = 'work@example.com'"
    )
    assert owner == pro.id  # the report this address gets is the Pro (full) edition


async def test_account_page_carries_the_report_section(web: httpx.AsyncClient) -> None:
    page = await web.get("/account")
    assert 'id="report-sub-form"' in page.text and "/static/account_reports.js" in page.text
    script = await web.get("/static/account_reports.js")
    assert script.status_code == 200 and "/api/reports/subscriptions" in script.text
    assert "innerHTML" not in script.text  # values are written as text, never as markup
