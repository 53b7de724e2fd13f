"""Origins, public answers without internal detail, bounded charts, and inputs that used to 500."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from chainlens.deps import Deps, make_redis
from chainlens.settings import SettingsError, load_settings
from tests.conftest import make_test_settings
from web.app import create_app
from web.auth import SESSION_COOKIE, session_cookie_value, sign_in_email

BLOG = "https://blog.example"
ADMIN = {"X-Admin-Key": "test-admin-key-0123456789"}


def client_for(app: object, ip: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 5000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def embed_deps(deps: Deps, database_url: str, redis_url: str, tmp_path: Path) -> Deps:
    settings = make_test_settings(
        database_url,
        redis_url,
        tmp_path,
        redis_prefix=deps.keys.prefix,
        cors_origins=BLOG,
        chart_requests_per_min=3,
        chart_render_concurrency=1,
    )
    return dataclasses.replace(deps, settings=settings)


@pytest.fixture
async def client(embed_deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(embed_deps.settings, deps=embed_deps)) as c:
        yield c


# --- CORS -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["*", "null", "https://ok.example,*", "https://*.example", "https://blog.example/path"]
)
def test_wildcard_and_null_origins_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("CORS_ORIGINS", value)
    monkeypatch.setenv("CHAINLENS_DATA_DIR", str(tmp_path))
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert str(err.value).startswith("invalid setting CORS_ORIGINS:")


async def test_widget_chat_endpoints_answer_the_listed_origin(client: httpx.AsyncClient) -> None:
    quota = await client.get("/api/chat/quota", headers={"Origin": BLOG})
    assert quota.status_code == 200
    assert quota.headers["access-control-allow-origin"] == BLOG
    assert quota.headers["access-control-allow-credentials"] == "true"
    preflight = await client.options(
        "/api/chat/stream",
        headers={
            "Origin": BLOG,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == BLOG
    other = await client.get("/api/chat/quota", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    "path",
    [
        "/api/keys",
        "/api/account",
        "/api/link/code",
        "/api/payment/checkout",
        "/api/auth/magic-link",
    ],
)
async def test_account_key_link_and_payment_endpoints_stay_same_origin(
    client: httpx.AsyncClient, path: str
) -> None:
    preflight = await client.options(
        path,
        headers={
            "Origin": BLOG,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert not any(h.startswith("access-control-") for h in preflight.headers)
    read = await client.get(path, headers={"Origin": BLOG})
    assert not any(h.startswith("access-control-") for h in read.headers)


async def test_cross_site_posts_with_the_session_are_refused(
    embed_deps: Deps, client: httpx.AsyncClient
) -> None:
    await sign_in_email(embed_deps, "ann@example.com")
    client.cookies.set(
        SESSION_COOKIE, session_cookie_value(embed_deps.settings, "web:ann@example.com")
    )
    forged = await client.post("/api/keys", json={"name": "stolen"}, headers={"Origin": BLOG})
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "forbidden"
    assert await embed_deps.db.fetchval("SELECT count(*) FROM api_keys") == 0
    same = await client.post(
        "/api/keys", json={"name": "mine"}, headers={"Origin": "http://testserver"}
    )
    assert same.status_code == 201


# --- health, readiness, project usage ----------------------------------------------------------


async def test_health_and_ready_hide_reasons_from_the_public(deps: Deps) -> None:
    dead = make_redis("unix:///tmp/chainlens-no-such-redis.sock", deps.settings)
    broken = dataclasses.replace(deps, redis=dead)
    try:
        async with client_for(create_app(deps.settings, deps=broken)) as c:
            public = await c.get("/api/v1/health")
            admin = await c.get("/api/v1/health", headers=ADMIN)
            bearer = await c.get(
                "/api/v1/health", headers={"Authorization": "Bearer " + ADMIN["X-Admin-Key"]}
            )
            ready = await c.get("/ready")
            ready_admin = await c.get("/ready", headers=ADMIN)
    finally:
        await dead.aclose()
    assert public.status_code == admin.status_code == 503
    body = public.json()
    assert body["services"]["redis"] == "down" and body["details"] == {} and body["metrics"] == {}
    assert "sock" not in public.text and "Error" not in public.text
    assert "chainlens-no-such-redis.sock" in admin.json()["details"]["redis"]
    assert "uptime_s" in admin.json()["metrics"] and "uptime_s" in bearer.json()["metrics"]
    assert ready.status_code == 503 and ready.text == "not ready: redis down"
    assert "chainlens-no-such-redis.sock" in ready_admin.text


async def test_project_usage_needs_a_caller(deps: Deps) -> None:
    async with client_for(create_app(deps.settings, deps=deps)) as c:
        anonymous = await c.get("/api/usage/project/uniswap")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthorized"
        await c.get("/api/chat/quota")  # an anonymous session cookie is not a caller either
        assert (await c.get("/api/usage/project/uniswap")).status_code == 401
        c.cookies.set(SESSION_COOKIE, session_cookie_value(deps.settings, "web:ivy@example.com"))
        assert (await c.get("/api/usage/project/uniswap")).status_code == 200


# --- inputs that used to be 500s ------------------------------------------------------------------


async def test_key_id_beyond_int64_is_a_client_error(deps: Deps) -> None:
    await sign_in_email(deps, "kim@example.com")
    async with client_for(create_app(deps.settings, deps=deps)) as c:
        c.cookies.set(SESSION_COOKIE, session_cookie_value(deps.settings, "web:kim@example.com"))
        huge = await c.delete(f"/api/keys/{2**63}")
        assert huge.status_code == 422
        assert huge.json()["error"]["code"] == "invalid_request"
        assert (await c.delete(f"/api/keys/{2**63 - 1}")).status_code == 404


async def test_signed_stripe_event_with_absurd_created_is_400(deps: Deps) -> None:
    secret = "whsec_hardening"
    settings = deps.settings.model_copy(update={"stripe_webhook_secret": SecretStr(secret)})
    sdeps = dataclasses.replace(deps, settings=settings)
    async with client_for(create_app(settings, deps=sdeps)) as c:
        for created in (10**18, -5, 2**40):
            event = {
                "id": f"evt_{created}",
                "object": "event",
                "type": "invoice.paid",
                "created": created,
                "data": {"object": {"id": "in_1"}},
            }
            payload = json.dumps(event).encode()
            t = int(time.time())
            mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256)
            reply = await c.post(
                "/api/stripe/webhook",
                content=payload,
                headers={"Stripe-Signature": f"t={t},v1={mac.hexdigest()}"},
            )
            assert reply.status_code == 400, reply.text
            assert reply.json()["error"]["code"] == "invalid_webhook"
    assert await deps.db.fetchval("SELECT count(*) FROM stripe_events") == 0


# --- charts ---------------------------------------------------------------------------------------


async def _snapshot(deps: Deps, prices: list[float]) -> int:
    history = [[1_700_000_000_000 + i * 86_400_000, p] for i, p in enumerate(prices)]
    return int(
        await deps.db.fetchval(
            "INSERT INTO analysis_snapshots (project_id, module, result)"
            " VALUES ('uniswap', 'onchain', $1) RETURNING id",
            {"price_history": history},
        )
    )


async def test_chart_is_rendered_once_per_snapshot(
    embed_deps: Deps, client: httpx.AsyncClient
) -> None:
    first_id = await _snapshot(embed_deps, [5.0, 6.0, 7.0])
    first = await client.get("/api/chart/uniswap.png")
    assert first.status_code == 200 and first.content.startswith(b"\x89PNG")
    # The stored history is gone, yet the same snapshot's chart still comes: from the cache.
    await embed_deps.db.execute(
        "UPDATE analysis_snapshots SET result = '{}' WHERE id = $1", first_id
    )
    again = await client.get("/api/chart/uniswap.png")
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    assert (
        await client.get("/api/chart/uniswap.png", headers={"If-None-Match": first.headers["etag"]})
    ).status_code == 304
    # A newer snapshot is a new chart (asked from another IP: this one has used its 3).
    await _snapshot(embed_deps, [7.0, 6.0, 5.0])
    async with client_for(create_app(embed_deps.settings, deps=embed_deps), "203.0.113.8") as c:
        newer = await c.get("/api/chart/uniswap.png")
    assert newer.status_code == 200 and newer.content != first.content


async def test_chart_requests_are_limited_per_ip(embed_deps: Deps) -> None:
    await _snapshot(embed_deps, [1.0, 2.0])
    app = create_app(embed_deps.settings, deps=embed_deps)
    async with client_for(app, "198.51.100.1") as one, client_for(app, "198.51.100.2") as two:
        statuses = [(await one.get("/api/chart/uniswap.png")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = await one.get("/api/chart/uniswap.png")
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await two.get("/api/chart/uniswap.png")).status_code == 200


async def test_chart_renders_wait_for_a_free_slot(embed_deps: Deps) -> None:
    await _snapshot(embed_deps, [1.0, 3.0, 2.0])
    app = create_app(embed_deps.settings, deps=embed_deps)
    async with client_for(app) as c:
        warm = await c.get("/api/chart/uniswap.png")  # creates the app's single slot
        assert warm.status_code == 200
        slots = app.state.chart_slots  # CHART_RENDER_CONCURRENCY=1
        await _snapshot(embed_deps, [3.0, 1.0, 2.0])  # uncached: needs a render
        await slots.acquire()  # another render holds the only slot
        try:
            pending = asyncio.create_task(c.get("/api/chart/uniswap.png"))
            await asyncio.sleep(0.5)
            assert not pending.done()  # waiting for the slot, not rendering alongside
        finally:
            slots.release()
        done = await asyncio.wait_for(pending, 10)
    assert done.status_code == 200 and done.content != warm.content
