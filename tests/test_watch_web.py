"""Watchlist and alerts through the HTTP API (the account page's calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from chainlens.deps import Deps
from web.app import create_app
from web.auth import SESSION_COOKIE, session_cookie_value, sign_in_email


@pytest.fixture
async def client(deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(deps.settings, deps=deps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


async def signed_in(deps: Deps, client: httpx.AsyncClient, email: str) -> None:
    await sign_in_email(deps, email)
    client.cookies.set(SESSION_COOKIE, session_cookie_value(deps.settings, f"web:{email}"))


async def test_anonymous_callers_are_asked_to_sign_in(client: httpx.AsyncClient) -> None:
    for reply in (
        await client.get("/api/watchlist"),
        await client.get("/api/alerts"),
        await client.post("/api/watchlist", json={"project": "BTC"}),
    ):
        assert reply.status_code == 401
        assert reply.json()["error"]["code"] == "sign_in_required"


async def test_watchlist_round_trip(deps: Deps, client: httpx.AsyncClient) -> None:
    await signed_in(deps, client, "wes@example.com")
    added = await client.post("/api/watchlist", json={"project": "$ETH"})
    assert added.status_code == 200
    assert added.json()["added"] and added.json()["project"]["display"] == "Ethereum (ETH)"
    assert not (await client.post("/api/watchlist", json={"project": "ethereum"})).json()["added"]
    listed = (await client.get("/api/watchlist")).json()
    assert [i["project_id"] for i in listed] == ["ethereum"]
    removed = await client.delete("/api/watchlist", params={"project": "ethereum"})
    assert removed.json()["removed"] is True
    assert (await client.get("/api/watchlist")).json() == []


async def test_limit_reached_carries_an_upgrade_link(deps: Deps, client: httpx.AsyncClient) -> None:
    await signed_in(deps, client, "lim@example.com")
    for coin in ("BTC", "ETH", "SOL", "UNI", "PEPE"):
        assert (await client.post("/api/watchlist", json={"project": coin})).status_code == 200
    refused = await client.post("/api/watchlist", json={"project": "ARB"})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "limit_reached"
    assert error["details"]["limit"] == 5 and error["details"]["tier"] == "free"
    assert "/api/payment/checkout-link/" in error["details"]["upgrade_url"]


async def test_alerts_set_on_the_web_go_by_email(deps: Deps, client: httpx.AsyncClient) -> None:
    await signed_in(deps, client, "Ann@Example.com")
    made = await client.post("/api/alerts", json={"alert": "BTC above 70k"})
    assert made.status_code == 201
    body = made.json()
    assert (body["channel"], body["destination"], body["kind"], body["level"]) == (
        "email",
        "ann@example.com",
        "above",
        70000.0,
    )
    assert body["description"].endswith("Bitcoin (BTC): price above $70,000 → ann@example.com")
    structured = await client.post(
        "/api/alerts", json={"project": "sol", "kind": "move", "level": 10}
    )
    assert structured.status_code == 201 and structured.json()["kind"] == "move"
    bad = await client.post("/api/alerts", json={"alert": "BTC to the moon"})
    assert bad.status_code == 400 and "/alert BTC above 70000" in bad.json()["error"]["message"]
    listed = (await client.get("/api/alerts")).json()
    assert [a["id"] for a in listed] == [body["id"], structured.json()["id"]]
    assert (await client.delete(f"/api/alerts/{body['id']}")).json() == {"deleted": True}
    assert (await client.delete(f"/api/alerts/{body['id']}")).status_code == 404
    assert len((await client.get("/api/alerts")).json()) == 1


async def test_unknown_project_lists_suggestions(fast_deps: Deps) -> None:
    app = create_app(fast_deps.settings, deps=fast_deps)  # CoinGecko /search: the fake
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        await signed_in(fast_deps, client, "sug@example.com")
        reply = await client.post("/api/watchlist", json={"project": "cardona"})
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["code"] == "unknown_project"
    assert error["details"]["suggestions"][0]["id"] == "cardano"


async def test_cross_site_posts_are_refused(deps: Deps, client: httpx.AsyncClient) -> None:
    await signed_in(deps, client, "xs@example.com")
    reply = await client.post(
        "/api/watchlist", json={"project": "BTC"}, headers={"Origin": "https://evil.example"}
    )
    assert reply.status_code == 403
    assert (await client.get("/api/watchlist")).json() == []


async def test_account_page_has_the_watch_section(client: httpx.AsyncClient) -> None:
    page = await client.get("/account")
    assert 'id="watch-form"' in page.text and 'id="alert-form"' in page.text
    assert "/static/account_watch.js" in page.text
    script = await client.get("/static/account_watch.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "/api/alerts" in script.text and "innerHTML" not in script.text
