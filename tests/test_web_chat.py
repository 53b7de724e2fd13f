"""The web chat channel: JSON and SSE answers, quota, limits, sign-in, API keys, charts."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from chainlens.deps import Deps
from chainlens.settings import TierLimits
from tests.fake_http import running_http_server
from tests.fake_sendgrid import API_KEY, FakeSendGrid
from tests.tools_fakes import FakeSources, fast_http
from web.app import create_app


@pytest.fixture
def chat_deps(deps: Deps, with_http: Any, sources: FakeSources) -> Deps:
    """Deps whose data sources are the fakes; free tier 5/day and 10/minute."""
    limits = dict(deps.settings.tier_limits)
    limits["free"] = TierLimits(daily=5, minute=10)
    settings = deps.settings.model_copy(update={"tier_limits": limits})
    return fast_http(with_http(dataclasses.replace(deps, settings=settings), sources.transport()))


@pytest.fixture
async def client(chat_deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(chat_deps.settings, deps=chat_deps)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        name = re.search(r"^event: (.*)$", block, re.MULTILINE)
        data = re.search(r"^data: (.*)$", block, re.MULTILINE)
        if name and data:
            events.append((name.group(1), json.loads(data.group(1))))
    return events


async def test_query_answers_about_the_exact_project(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/chat/query", json={"message": "Research Uniswap"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "Uniswap (UNI)" in body["response"]
    assert body["project"]["id"] == "uniswap"
    assert body["usage"]["requests_remaining"] == 4
    assert body["usage"]["requests_limit"] == 5
    assert {s["source"] for s in body["sources"]} >= {"CoinGecko"}
    assert response.headers["x-ratelimit-limit"] == "5"
    assert response.headers["x-ratelimit-remaining"] == "4"
    assert "cl_session" in response.headers["set-cookie"]
    assert "HttpOnly" in response.headers["set-cookie"]


async def test_stream_sends_plan_tools_text_and_final(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/chat/stream", json={"message": "Research Uniswap"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[0] == "quota" and names[1] == "plan" and names[-1] == "final"
    plan = events[1][1]
    assert plan["project"]["display"] == "Uniswap (UNI)"
    assert sorted(plan["tools"]) == ["onchain", "sentiment", "team", "tokenomics"]
    tool_events = [data for name, data in events if name == "tool"]
    assert {(t["tool"], t["status"]) for t in tool_events} >= {
        (tool, status) for tool in plan["tools"] for status in ("started", "finished")
    }
    assert "text" in names
    final = events[-1][1]
    streamed = "".join(data["chunk"] for name, data in events if name == "text")
    assert final["response"].startswith(streamed[:50])
    assert final["chart_url"] == "/api/chart/uniswap.png"
    chart = await client.get(final["chart_url"])
    assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")


async def test_follow_up_uses_the_conversation(client: httpx.AsyncClient) -> None:
    first = await client.post(
        "/api/chat/query", json={"message": "Research Uniswap", "conversation_id": "c1"}
    )
    assert first.status_code == 200
    follow = await client.post(
        "/api/chat/stream", json={"message": "what about its team?", "conversation_id": "c1"}
    )
    plan = dict(parse_sse(follow.text))["plan"]
    assert plan["project"]["id"] == "uniswap"
    assert plan["tools"] == ["team"]


async def test_free_visitor_hits_the_daily_quota_with_upgrade_link(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(5):
        ok = await client.post("/api/chat/query", json={"message": "UNI price?"})
        assert ok.status_code == 200, ok.text
    refused = await client.post("/api/chat/stream", json={"message": "UNI price?"})
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "5 requests for today" in error["message"]
    assert error["details"]["upgrade_url"].endswith("/pricing")
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["x-ratelimit-remaining"] == "0"


async def test_clearing_cookies_does_not_reset_the_networks_quota(chat_deps: Deps) -> None:
    settings = chat_deps.settings.model_copy(update={"free_ip_daily": 7})
    app = create_app(settings, deps=dataclasses.replace(chat_deps, settings=settings))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for _ in range(5):
            assert (
                await client.post("/api/chat/query", json={"message": "UNI price?"})
            ).status_code == 200
        client.cookies.clear()
        # A new visitor behind the same address is served: its network has 2 requests left.
        for _ in range(2):
            assert (
                await client.post("/api/chat/query", json={"message": "UNI price?"})
            ).status_code == 200
        client.cookies.clear()
        again = await client.post("/api/chat/query", json={"message": "UNI price?"})
    assert again.status_code == 429
    assert "Your network has used all 7 free requests" in again.json()["error"]["message"]


async def test_greeting_is_answered_without_spending_quota(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/chat/query", json={"message": "good morning"})
    assert response.status_code == 200
    assert response.json()["response"].strip()
    quota = await client.get("/api/chat/quota")
    assert quota.json()["remaining"] == 5


async def test_oversized_message_gets_the_limit_and_costs_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/chat/query", json={"message": "Research Uniswap " * 200})
    assert response.status_code == 413
    assert "the limit is 2000" in response.json()["error"]["message"]
    assert (await client.get("/api/chat/quota")).json()["remaining"] == 5


async def test_client_tier_header_is_not_trusted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/chat/query", json={"message": "UNI price?"}, headers={"X-User-Tier": "enterprise"}
    )
    assert response.headers["x-ratelimit-limit"] == "5"


async def test_magic_link_signs_in_once(chat_deps: Deps) -> None:
    FakeSendGrid.messages.clear()
    with running_http_server(FakeSendGrid) as host:
        settings = chat_deps.settings.model_copy(
            update={"sendgrid_api_key": SecretStr(API_KEY), "sendgrid_api_base": host}
        )
        deps = dataclasses.replace(chat_deps, settings=settings)
        app = create_app(settings, deps=deps)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            sent = await client.post("/api/auth/magic-link", json={"email": "Ann@Example.com"})
            assert sent.status_code == 200, sent.text
            [message] = FakeSendGrid.messages
            assert message["personalizations"][0]["to"][0]["email"] == "ann@example.com"
            link = re.search(r"(/auth/verify\?token=[\w-]+)", message["content"][0]["value"])
            assert link
            page = await client.get(link.group(1))  # the link opens a page; its button posts
            form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
            verified = await client.post("/auth/verify", data=form)
            assert verified.status_code == 303 and verified.headers["location"] == "/account"
            account = await client.get("/api/account")
            assert account.json()["anonymous"] is False
            assert "web:ann@example.com" in account.json()["identities"]
            reused = await client.post("/auth/verify", data=form)
            assert reused.status_code == 400
            assert "used or expired" in reused.text


async def test_magic_link_without_sendgrid_is_503(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/magic-link", json={"email": "ann@example.com"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "email_not_configured"


async def test_api_key_caller_shares_the_account(
    client: httpx.AsyncClient, chat_deps: Deps
) -> None:
    from web.auth import SESSION_COOKIE, session_cookie_value

    client.cookies.set(
        SESSION_COOKIE, session_cookie_value(chat_deps.settings, "web:ann@example.com")
    )
    created = await client.post("/api/keys", json={"name": "bot"})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    client.cookies.clear()
    answered = await client.post(
        "/api/chat/query",
        json={"message": "UNI price?"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answered.status_code == 200
    # One account behind the session and the key: the key's request shows on the account.
    client.cookies.set(
        SESSION_COOKIE, session_cookie_value(chat_deps.settings, "web:ann@example.com")
    )
    assert (await client.get("/api/account")).json()["daily_used"] == 1
    bad = await client.post(
        "/api/chat/query", json={"message": "UNI price?"}, headers={"Authorization": "Bearer nope"}
    )
    assert bad.status_code == 401


async def test_pages_account_and_pricing(client: httpx.AsyncClient) -> None:
    assert (await client.get("/account")).status_code == 200
    pricing = await client.get("/pricing")
    assert pricing.status_code == 200 and "1,000" in pricing.text
    account = (await client.get("/api/account")).json()
    assert account["tier"] == "free" and account["anonymous"] is True
