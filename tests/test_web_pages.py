"""The demo page, the widget assets and the security headers."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from billing.accounts import account_for_identity, set_base_tier
from chainlens.deps import Deps
from chainlens.settings import TierLimits
from tests.test_billing_stripe import SECRET, sign, sub_event
from tests.tools_fakes import FakeSources, fast_http
from web.app import create_app
from web.auth import SESSION_COOKIE, session_cookie_value
from web.history import HISTORY_TTL_S, MAX_TURNS, recent_turns, record_turn


def client_for(deps: Deps) -> httpx.AsyncClient:
    app = create_app(deps.settings, deps=deps)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_demo_page_embeds_the_widget(deps: Deps) -> None:
    async with client_for(deps) as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert '<script src="/widget.js"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"


async def test_widget_is_served_with_cache_headers_and_etag(deps: Deps) -> None:
    async with client_for(deps) as client:
        script = await client.get("/widget.js")
        again = await client.get("/widget.js", headers={"If-None-Match": script.headers["etag"]})
        css = await client.get("/widget.css")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert script.headers["cache-control"] == "public, max-age=3600"
    assert "attachShadow" in script.text
    assert again.status_code == 304
    assert css.status_code == 200 and ".cl-bubble" in css.text


async def test_errors_have_one_json_shape(deps: Deps) -> None:
    async with client_for(deps) as client:
        missing = await client.get("/no/such/page")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"code": "not_found", "message": "Not Found", "details": None}
    }


# --- issue 18: the web's rough edges ----------------------------------------------------------

_ASSET_REF = re.compile(r'(?:src|href)\s*=\s*["\']([^"\']+)["\']')
_SCRIPT_URLS = re.compile(r'(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s"\']*')


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_api_docs_load_only_same_origin_assets(deps: Deps, page: str) -> None:
    async with client_for(deps) as client:
        html = await client.get(page)
        assert html.status_code == 200
        refs = _ASSET_REF.findall(html.text)
        assert refs, "the docs page loads its UI from somewhere"
        # Nothing from a CDN: every script, stylesheet and icon is ours, so /docs works offline.
        assert all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
        assert not _SCRIPT_URLS.findall(html.text.replace("http://test", ""))
        scripts = [ref for ref in refs if ref.endswith(".js")]
        assert scripts
        for ref in refs:
            asset = await client.get(ref)
            assert asset.status_code == 200, ref
            if ref.endswith(".js"):
                assert "javascript" in asset.headers["content-type"]
                assert len(asset.content) > 100_000  # the real UI bundle, not a stub
            if ref.endswith(".css"):
                assert asset.headers["content-type"].startswith("text/css")
        spec = await client.get("/openapi.json")
    assert spec.status_code == 200 and spec.json()["info"]["title"] == "ChainLens API"


async def test_embed_snippet_names_the_host_and_port_the_page_was_reached_on(deps: Deps) -> None:
    app = create_app(deps.settings, deps=deps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://chat.example.org:8123"
    ) as client:
        page = await client.get("/")
    assert '&lt;script src="http://chat.example.org:8123/widget.js"' in page.text
    assert "localhost:8000" not in page.text
    free = deps.settings.limits_for("free").daily
    assert f"Free: {free:,} questions a day" in page.text


async def test_embed_snippet_uses_public_base_url_when_it_is_set(deps: Deps) -> None:
    settings = deps.settings.model_copy(update={"public_base_url": "https://research.example.com"})
    app = create_app(settings, deps=dataclasses.replace(deps, settings=settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://10.0.0.5:9000"
    ) as client:
        page = await client.get("/")
    assert '&lt;script src="https://research.example.com/widget.js"' in page.text
    assert "10.0.0.5" not in page.text


async def test_embed_snippet_escapes_a_hostile_host_header(deps: Deps) -> None:
    async with client_for(deps) as client:
        page = await client.get("/", headers={"host": 'x"><img src=y onerror=alert(1)>'})
    assert "<img src=y" not in page.text


async def test_favicon_is_served_and_linked_from_every_page(deps: Deps) -> None:
    async with client_for(deps) as client:
        ico = await client.get("/favicon.ico")
        svg = await client.get("/favicon.svg")
        pages = [await client.get(path) for path in ("/", "/account", "/pricing")]
    assert ico.status_code == 200 and svg.status_code == 200
    assert ico.headers["content-type"].startswith("image/svg+xml")
    assert ico.content.startswith(b"<svg") and ico.content == svg.content
    for page in pages:
        assert '<link rel="icon" href="/favicon.svg" type="image/svg+xml">' in page.text


# --- what the account and pricing pages offer -----------------------------------------------


async def _signed_in(client: httpx.AsyncClient, deps: Deps, email: str) -> None:
    # As the server would have set it for host "test" (the cookie jar calls it "test.local"),
    # so that the server can also remove it.
    client.cookies.set(
        SESSION_COOKIE,
        session_cookie_value(deps.settings, f"web:{email}"),
        domain="test.local",
        path="/",
    )


async def test_account_offers_upgrade_only_to_free_accounts(deps: Deps) -> None:
    async with client_for(deps) as client:
        anonymous = (await client.get("/api/account")).json()
        await _signed_in(client, deps, "pat@example.com")
        free = (await client.get("/api/account")).json()
        account = await account_for_identity(deps, "web:pat@example.com")
        await set_base_tier(deps, account.id, "pro")  # an admin's grant: no subscription
        pro = (await client.get("/api/account")).json()
        await set_base_tier(deps, account.id, "enterprise")
        enterprise = (await client.get("/api/account")).json()
    assert anonymous["can_upgrade"] and not anonymous["can_manage_subscription"]
    assert free["tier"] == "free" and free["can_upgrade"]
    assert not free["can_manage_subscription"]
    assert pro["tier"] == "pro" and not pro["can_upgrade"]
    assert not pro["can_manage_subscription"] and pro["subscription"] is None
    assert not enterprise["can_upgrade"] and not enterprise["can_manage_subscription"]


async def test_manage_subscription_only_with_a_live_stripe_subscription(deps: Deps) -> None:
    settings = deps.settings.model_copy(
        update={
            "stripe_secret_key": SecretStr("sk_test_fake"),
            "stripe_webhook_secret": SecretStr(SECRET),
            "stripe_price_pro": "price_pro",
        }
    )
    sdeps = dataclasses.replace(deps, settings=settings)
    account = await account_for_identity(sdeps, "web:sub@example.com")
    now = int(time.time())
    async with client_for(sdeps) as client:
        await _signed_in(client, sdeps, "sub@example.com")
        # What Stripe sends after a checkout: the session (naming the customer), the subscription.
        checkout = {
            "id": "evt_cs",
            "object": "event",
            "type": "checkout.session.completed",
            "created": now,
            "data": {
                "object": {
                    "id": "cs_1",
                    "object": "checkout.session",
                    "customer": "cus_sub_a",
                    "subscription": "sub_a",
                    "client_reference_id": str(account.id),
                    "payment_status": "paid",
                    "metadata": {"tier": "pro"},
                }
            },
        }
        for event in (
            checkout,
            sub_event(
                "evt_a",
                "created",
                now,
                account_id=account.id,
                sub_id="sub_a",
                status="active",
                price="price_pro",
            ),
        ):
            payload = json.dumps(event).encode()
            delivered = await client.post(
                "/api/stripe/webhook", content=payload, headers={"Stripe-Signature": sign(payload)}
            )
            assert delivered.status_code == 200, delivered.text
        subscribed = (await client.get("/api/account")).json()
        ended = sub_event(
            "evt_b",
            "deleted",
            now + 5,
            account_id=account.id,
            sub_id="sub_a",
            status="canceled",
            price="price_pro",
        )
        payload = json.dumps(ended).encode()
        assert (
            await client.post(
                "/api/stripe/webhook", content=payload, headers={"Stripe-Signature": sign(payload)}
            )
        ).status_code == 200
        cancelled = (await client.get("/api/account")).json()
    assert subscribed["tier"] == "pro"
    assert subscribed["can_manage_subscription"] and not subscribed["can_upgrade"]
    assert cancelled["tier"] == "free"
    assert cancelled["can_upgrade"] and not cancelled["can_manage_subscription"]


async def test_pages_hide_upgrade_and_portal_until_the_account_says_so(deps: Deps) -> None:
    async with client_for(deps) as client:
        account_page = (await client.get("/account")).text
        pricing_page = (await client.get("/pricing")).text
    # Shown by the script only when /api/account allows them (browser test: Pro user).
    assert '<button id="upgrade" type="button" hidden>Upgrade to Pro</button>' in account_page
    assert '<button id="portal" type="button" hidden>Manage subscription</button>' in account_page
    assert '<button id="upgrade" type="button" hidden>Upgrade to Pro</button>' in pricing_page


# --- sign-out -----------------------------------------------------------------------------------


async def test_logout_ends_the_signed_in_session(deps: Deps) -> None:
    async with client_for(deps) as client:
        await _signed_in(client, deps, "out@example.com")
        before = (await client.get("/api/chat/history")).json()
        response = await client.post("/api/auth/logout")
        after = (await client.get("/api/chat/history")).json()
        account = (await client.get("/api/account")).json()
    assert before["signed_in_as"] == "out@example.com"
    assert response.status_code == 204
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f'{SESSION_COOKIE}=""') and "Max-Age=0" in cookie
    assert after["signed_in_as"] is None
    assert account["anonymous"] and "web:out@example.com" not in account["identities"]


# --- the widget's conversation, quota and refusals (server side) ------------------------------


@pytest.fixture
def chat_deps(deps: Deps, with_http: Any, sources: FakeSources) -> Deps:
    """Deps whose data sources are the fakes; free tier 5/day and 1/minute."""
    limits = dict(deps.settings.tier_limits)
    limits["free"] = TierLimits(daily=5, minute=1)
    settings = deps.settings.model_copy(update={"tier_limits": limits})
    return fast_http(with_http(dataclasses.replace(deps, settings=settings), sources.transport()))


@pytest.fixture
async def chat(chat_deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(chat_deps.settings, deps=chat_deps)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def _final(stream: httpx.Response) -> dict[str, Any]:
    finals = [
        json.loads(m.group(1)) for m in re.finditer(r"event: final\ndata: (.*)\n", stream.text)
    ]
    assert len(finals) == 1, stream.text[:500]
    return finals[0]


async def test_per_minute_refusal_reports_the_days_quota(chat: httpx.AsyncClient) -> None:
    first = await chat.post("/api/chat/query", json={"message": "Research Uniswap"})
    assert first.status_code == 200, first.text
    refused = await chat.post("/api/chat/stream", json={"message": "UNI price?"})
    assert refused.status_code == 429
    details = refused.json()["error"]["details"]
    assert details["window"] == "minute" and details["limit"] == 1
    # The day's count is untouched by a per-minute refusal: 4 of 5 left, not "0 of 1".
    assert (details["day_limit"], details["day_remaining"], details["tier"]) == (5, 4, "free")
    quota = (await chat.get("/api/chat/quota")).json()
    assert (quota["remaining"], quota["limit"]) == (4, 5)


async def test_history_returns_this_sessions_recent_turns(
    chat: httpx.AsyncClient, chat_deps: Deps
) -> None:
    empty = (await chat.get("/api/chat/history")).json()
    assert empty == {
        "conversation_id": "default",
        "turns": [],
        "signed_in_as": None,
        "language": "en",
    }
    answered = await chat.post(
        "/api/chat/stream", json={"message": "Research Uniswap", "conversation_id": "default"}
    )
    final = _final(answered)
    history = (await chat.get("/api/chat/history")).json()
    assert history["conversation_id"] == "default"
    [turn] = history["turns"]
    assert turn["question"] == "Research Uniswap"
    assert turn["answer"] == final["response"] and "Uniswap (UNI)" in turn["answer"]
    assert turn["sources"] == [{"source": s["source"], "url": s["url"]} for s in final["sources"]]
    assert turn["project"]["display"] == "Uniswap (UNI)"
    assert turn["chart_url"] == final["chart_url"]

    # Another visitor (another cookie) sees nothing of it, even naming the same conversation.
    app = create_app(chat_deps.settings, deps=chat_deps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.1", 1)), base_url="http://test"
    ) as stranger:
        theirs = (
            await stranger.get("/api/chat/history", params={"conversation_id": "default"})
        ).json()
    assert theirs["turns"] == []


async def test_new_chat_starts_an_empty_conversation_that_survives_a_reload(
    chat: httpx.AsyncClient,
) -> None:
    _final(await chat.post("/api/chat/stream", json={"message": "hello"}))
    assert len((await chat.get("/api/chat/history")).json()["turns"]) == 1
    started = await chat.post("/api/chat/conversations")
    assert started.status_code == 200
    new_id = started.json()["conversation_id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,100}", new_id) and new_id != "default"
    reloaded = (await chat.get("/api/chat/history")).json()
    assert reloaded["conversation_id"] == new_id and reloaded["turns"] == []
    _final(
        await chat.post("/api/chat/stream", json={"message": "hi there", "conversation_id": new_id})
    )
    now = (await chat.get("/api/chat/history")).json()
    assert [t["question"] for t in now["turns"]] == ["hi there"]
    earlier = (await chat.get("/api/chat/history", params={"conversation_id": "default"})).json()
    assert [t["question"] for t in earlier["turns"]] == ["hello"]


async def test_history_keeps_the_last_turns_only(deps: Deps) -> None:
    final = {"response": "ok", "sources": [], "project": None, "chart_url": None}
    for i in range(MAX_TURNS + 5):
        await record_turn(
            deps, identity="web-anon:abc", conversation_id="c1", question=f"q{i}", final=final
        )
    turns = await recent_turns(deps, identity="web-anon:abc", conversation_id="c1")
    assert [t.question for t in turns] == [f"q{i}" for i in range(5, MAX_TURNS + 5)]
    key = deps.keys("web", "turns", "{web-anon:abc}", "web-anon:abc:c1")  # tagged: see history
    assert 0 < await deps.redis.ttl(key) <= HISTORY_TTL_S


async def test_api_key_answers_are_not_kept_as_widget_history(
    paid_client: httpx.AsyncClient, fast_deps: Deps
) -> None:
    answered = await paid_client.post(
        "/api/chat/query", json={"message": "Research Uniswap", "conversation_id": "k1"}
    )
    assert answered.status_code == 200, answered.text
    history = (await paid_client.get("/api/chat/history", params={"conversation_id": "k1"})).json()
    assert history["turns"] == []
    assert [
        k async for k in fast_deps.redis.scan_iter(match=fast_deps.keys("web", "turns", "*"))
    ] == []
