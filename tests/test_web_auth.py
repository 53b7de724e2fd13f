"""Who is calling on the web: API keys, signed session cookies, anonymous sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Depends, Request

from billing.accounts import account_for_identity, set_base_tier
from billing.quota import flush_pending
from chainlens.deps import Deps
from chainlens.settings import Settings
from web.app import create_app
from web.auth import (
    SESSION_COOKIE,
    Caller,
    consume_web_request,
    current_caller,
    rate_limit_headers,
    session_cookie_value,
    sign_in_email,
)


@pytest.fixture
async def client(deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(deps.settings, deps=deps)

    # a stand-in for the chat endpoint: consume one request, report the caller
    @app.get("/test/whoami")
    async def whoami(
        request: Request, caller: Caller = Depends(current_caller)
    ) -> dict[str, object]:
        decision = await consume_web_request(request, caller)
        return {
            "identity": caller.identity,
            "account": caller.account.id,
            "tier": caller.account.tier,
            "headers": rate_limit_headers(decision),
        }

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c
    await flush_pending(deps)


async def test_anonymous_visitor_gets_a_signed_httponly_cookie(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/payment/subscription")
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie
    assert "SameSite=lax" in cookie and "Secure" not in cookie
    again = await client.get("/api/usage/stats")  # the cookie jar sends it back
    assert "set-cookie" not in again.headers
    assert again.json() == {"daily_used": 0, "daily_limit": 5, "monthly_cost": 0.0}


async def test_tampered_cookie_is_a_new_anonymous_session(
    deps: Deps, client: httpx.AsyncClient
) -> None:
    value = session_cookie_value(deps.settings, "web:dave@example.com")
    client.cookies.set(SESSION_COOKIE, value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1])
    reply = await client.get("/test/whoami")
    assert reply.json()["identity"].startswith("web-anon:")


async def test_session_cookie_for_email_sign_in(deps: Deps, client: httpx.AsyncClient) -> None:
    account = await sign_in_email(deps, "Dave@Example.com")
    client.cookies.set(SESSION_COOKIE, session_cookie_value(deps.settings, "web:dave@example.com"))
    reply = await client.get("/test/whoami")
    assert reply.json()["identity"] == "web:dave@example.com"
    assert reply.json()["account"] == account.id


async def test_tier_header_is_never_trusted(deps: Deps, client: httpx.AsyncClient) -> None:
    reply = await client.get("/test/whoami", headers={"X-User-Tier": "enterprise"})
    assert reply.json()["tier"] == "free"
    assert reply.json()["headers"]["X-RateLimit-Limit"] == "5"


async def test_refusal_is_429_with_retry_after_and_upgrade_link(client: httpx.AsyncClient) -> None:
    assert (await client.get("/test/whoami")).status_code == 200
    refused = await client.get("/test/whoami")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    body = refused.json()["error"]
    assert body["code"] == "quota_exceeded" and body["details"]["upgrade_url"].endswith("/pricing")
    assert "per minute" in body["message"]


async def test_clearing_cookies_does_not_reset_anonymous_quota(client: httpx.AsyncClient) -> None:
    for _ in range(10):  # each new visitor is served, up to the network's 10 a minute
        assert (await client.get("/test/whoami")).status_code == 200
        client.cookies.clear()
    refused = await client.get("/test/whoami")
    assert refused.status_code == 429  # same IP, same minute bucket
    assert "from your network" in refused.json()["error"]["message"]


async def test_api_keys_create_use_list_revoke(deps: Deps, client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/keys", json={"name": "x"})).status_code == 403  # anonymous
    account = await sign_in_email(deps, "erin@example.com")
    await set_base_tier(deps, account.id, "pro")
    client.cookies.set(SESSION_COOKIE, session_cookie_value(deps.settings, "web:erin@example.com"))
    created = await client.post("/api/keys", json={"name": "laptop"})
    assert created.status_code == 201
    key = created.json()["key"]
    listed = (await client.get("/api/keys")).json()["keys"]
    assert listed[0]["prefix"] == key[:10] and "key" not in listed[0]
    assert key not in str(await deps.db.fetch("SELECT * FROM api_keys"))
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {key}"}
    used = await client.get("/test/whoami", headers=bearer)
    assert used.json()["account"] == account.id and used.json()["tier"] == "pro"
    assert used.json()["headers"]["X-RateLimit-Limit"] == "1000"
    assert (await account_for_identity(deps, used.json()["identity"])).id == account.id
    client.cookies.set(SESSION_COOKIE, session_cookie_value(deps.settings, "web:erin@example.com"))
    assert (await client.delete(f"/api/keys/{created.json()['id']}")).status_code == 204
    client.cookies.clear()
    revoked = await client.get("/test/whoami", headers=bearer)
    assert revoked.status_code == 401
    assert (
        await client.get("/test/whoami", headers={"Authorization": "Bearer nope"})
    ).status_code == 401


async def test_secure_cookie_when_public_url_is_https(
    deps: Deps, database_url: str, redis_url: str, tmp_path: object
) -> None:
    import dataclasses

    from conftest import make_test_settings

    settings = make_test_settings(
        database_url,
        redis_url,
        tmp_path,  # type: ignore[arg-type]
        redis_prefix=deps.keys.prefix,
        public_base_url="https://chainlens.example",
    )
    https_deps = dataclasses.replace(deps, settings=settings)
    app = create_app(settings, deps=https_deps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        reply = await c.get("/api/payment/subscription")
    assert "Secure" in reply.headers["set-cookie"]


def test_session_cookie_is_cross_site_only_for_an_https_embed(settings: Settings) -> None:
    from fastapi import Response

    from web.auth import set_session_cookie

    local = Response()
    set_session_cookie(local, settings, "web:ann@example.com")
    assert "samesite=lax" in local.headers["set-cookie"].lower()
    embedded = settings.model_copy(
        update={
            "public_base_url": "https://chainlens.example",
            "cors_origins": ["https://blog.example"],
        }
    )
    remote = Response()
    set_session_cookie(remote, embedded, "web:ann@example.com")
    cookie = remote.headers["set-cookie"].lower()
    assert "samesite=none" in cookie and "secure" in cookie and "httponly" in cookie


async def test_api_key_cache_applies_tier_changes_at_once_and_other_replicas_within_its_time(
    deps: Deps, database_url: str, redis_url: str, tmp_path: object
) -> None:
    import asyncio
    import dataclasses

    from billing.api_keys import create_api_key
    from conftest import make_test_settings

    settings = make_test_settings(
        database_url,
        redis_url,
        tmp_path,  # type: ignore[arg-type]
        redis_prefix=deps.keys.prefix,
        api_key_cache_s=0.3,
    )
    short = dataclasses.replace(deps, settings=settings)
    app = create_app(settings, deps=short)

    @app.get("/test/whoami")
    async def whoami(caller: Caller = Depends(current_caller)) -> dict[str, object]:
        return {"account": caller.account.id, "tier": caller.account.tier}

    account = await sign_in_email(deps, "kim@example.com")
    key, info = await create_api_key(deps, account, "ci")
    bearer = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        assert (await c.get("/test/whoami", headers=bearer)).json()["tier"] == "free"
        # A tier change in this process is seen by the very next request.
        await set_base_tier(short, account.id, "pro")
        assert (await c.get("/test/whoami", headers=bearer)).json()["tier"] == "pro"
        # A revoke written by another replica (straight to PostgreSQL) is seen once the
        # entry this process holds has expired, and from then on the key is refused.
        await deps.db.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", info.id)
        assert (await c.get("/test/whoami", headers=bearer)).status_code == 200
        await asyncio.sleep(0.35)
        assert (await c.get("/test/whoami", headers=bearer)).status_code == 401
        assert (await c.get("/test/whoami", headers=bearer)).status_code == 401
