"""Usage and linking endpoints through the HTTP API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from billing.accounts import account_for_identity, create_link_code, identities_of
from billing.usage import UsageRecord, record_usage
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


async def test_track_and_project_usage(deps: Deps, client: httpx.AsyncClient) -> None:
    for _ in range(3):
        reply = await client.post(
            "/api/usage/track", json={"projectId": "uniswap", "action": "view"}
        )
        assert reply.json() == {"tracked": True}
    assert (await client.get("/api/usage/project/uniswap")).status_code == 401  # no caller
    client.cookies.set(SESSION_COOKIE, session_cookie_value(deps.settings, "web:ivy@example.com"))
    usage = (await client.get("/api/usage/project/uniswap")).json()
    assert usage == {
        "projectId": "uniswap",
        "requests_today": 3,
        "requests_7d": 3,
        "requests_30d": 3,
    }
    assert (await client.post("/api/usage/track", json={"projectId": "../etc"})).status_code == 422


async def test_usage_stats_reports_day_and_month(deps: Deps, client: httpx.AsyncClient) -> None:
    account = await sign_in_email(deps, "fay@example.com")
    client.cookies.set(SESSION_COOKIE, session_cookie_value(deps.settings, "web:fay@example.com"))
    await record_usage(
        deps,
        UsageRecord(request_id=uuid.uuid4(), account_id=account.id, cost_usd=0.25, question="q"),
    )
    stats = await client.get("/api/usage/stats")
    assert stats.json() == {"daily_used": 0, "daily_limit": 5, "monthly_cost": 0.25}
    assert stats.headers["X-RateLimit-Limit"] == "5"


async def test_link_a_telegram_code_from_the_web(deps: Deps, client: httpx.AsyncClient) -> None:
    telegram = await account_for_identity(deps, "telegram:321")
    code = await create_link_code(deps, telegram)
    client.cookies.set(SESSION_COOKIE, session_cookie_value(deps.settings, "web:gus@example.com"))
    reply = await client.post("/api/link/redeem", json={"code": code})
    assert reply.status_code == 200
    kept = reply.json()["account_id"]
    assert await identities_of(deps, kept) == ["telegram:321", "web:gus@example.com"]
    again = await client.post("/api/link/redeem", json={"code": code})
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_link_code"
    issued = (await client.post("/api/link/code")).json()
    assert len(issued["code"]) == 9 and issued["expires_in_s"] == 600
