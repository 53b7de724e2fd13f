"""Anonymous visitors: no rows until their first charged request, a cap on new accounts per
network, and idle anonymous accounts purged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from billing.accounts import account_for_identity, create_link_code, redeem_link_code
from billing.anonymous import purge_anonymous_accounts
from billing.usage import UsageRecord, record_usage
from chainlens.deps import Deps
from chainlens.settings import Settings, TierLimits
from tests.conftest import AppFactory
from tests.live_server import LiveServer
from tests.tools_fakes import FakeSources, fast_http


async def _rows(deps: Deps) -> tuple[int, int]:
    users = await deps.db.fetchval("SELECT count(*) FROM users")
    identities = await deps.db.fetchval("SELECT count(*) FROM identities")
    return int(users), int(identities)


@pytest.fixture(scope="module")
def live(settings: Settings) -> Any:
    def configure(deps: Deps) -> Deps:
        built: Deps = fast_http(deps)
        return built

    server = LiveServer(settings, transport=FakeSources().transport(), configure=configure).start()
    yield server
    server.stop()


async def test_cookieless_requests_over_http_write_no_rows(deps: Deps, live: LiveServer) -> None:
    paths = ["/api/chat/quota", "/api/account", "/api/usage/stats", "/api/payment/subscription"]
    statuses = []
    async with httpx.AsyncClient(base_url=live.url) as client:
        for n in range(200):
            client.cookies.clear()  # every request cookieless
            reply = await client.get(paths[n % len(paths)])
            assert "cl_session" in reply.headers.get("set-cookie", "")
            statuses.append(reply.status_code)
    assert set(statuses) == {200}
    assert await _rows(deps) == (0, 0)
    async with httpx.AsyncClient(base_url=live.url) as reader:
        account = (await reader.get("/api/account")).json()
    assert account["anonymous"] and account["identities"][0].startswith("web-anon:")
    assert account["daily_used"] == 0 and account["tier"] == "free"
    # The first charged request saves the account (one user, one identity) and no more.
    async with httpx.AsyncClient(base_url=live.url) as visitor:
        answered = await visitor.post("/api/chat/query", json={"message": "UNI price?"})
        assert answered.status_code == 200, answered.text
        assert (await visitor.get("/api/account")).json()["daily_used"] == 1
    assert await _rows(deps) == (1, 1)


async def test_refused_requests_write_no_rows(deps: Deps, make_client: AppFactory) -> None:
    client = make_client(free_ip_daily=1)
    assert (await client.post("/api/chat/query", json={"message": "UNI price?"})).status_code == 200
    assert await _rows(deps) == (1, 1)
    for _ in range(20):  # new visitors from a network whose allowance is spent
        client.cookies.clear()
        refused = await client.post("/api/chat/query", json={"message": "UNI price?"})
        assert refused.status_code == 429
    assert await _rows(deps) == (1, 1)


async def test_new_anonymous_accounts_are_capped_per_network(
    deps: Deps, make_client: AppFactory
) -> None:
    client = make_client(anon_accounts_per_ip_daily=3)
    statuses = []
    for _ in range(5):  # greetings are free, so only the account cap stops this
        client.cookies.clear()
        reply = await client.post("/api/chat/query", json={"message": "hello"})
        statuses.append((reply.status_code, reply.json().get("error", {}).get("code")))
    assert statuses == [(200, None)] * 3 + [(429, "too_many_new_sessions")] * 2
    assert await _rows(deps) == (3, 3)
    elsewhere = make_client(peer="198.51.100.8", anon_accounts_per_ip_daily=3)
    assert (await elsewhere.post("/api/chat/query", json={"message": "hello"})).status_code == 200


async def _anonymous(deps: Deps, n: int, *, idle_days: int) -> int:
    account = await account_for_identity(deps, f"web-anon:visitor-{n:04d}-abcdefghijkl")
    await deps.db.execute(
        "UPDATE users SET created_at = now() - $2::interval, updated_at = now() - $2::interval"
        " WHERE id = $1",
        account.id,
        timedelta(days=idle_days),
    )
    return account.id


async def test_purge_removes_only_idle_anonymous_accounts(deps: Deps) -> None:
    idle = await _anonymous(deps, 1, idle_days=45)
    recent = await _anonymous(deps, 2, idle_days=3)
    used = await _anonymous(deps, 3, idle_days=45)  # old, but asked something last week
    await record_usage(
        deps,
        UsageRecord(
            request_id=__import__("uuid").uuid4(),
            account_id=used,
            identity="web-anon:visitor-0003-abcdefghijkl",
        ),
    )
    linked = await _anonymous(deps, 4, idle_days=45)  # linked to Telegram: not anonymous
    code = await create_link_code(
        deps, (await account_for_identity(deps, "web-anon:visitor-0004-abcdefghijkl"))
    )
    await redeem_link_code(deps, "telegram:4004", code)
    old_usage = await _anonymous(deps, 5, idle_days=60)
    await record_usage(
        deps, UsageRecord(request_id=__import__("uuid").uuid4(), account_id=old_usage)
    )
    await deps.db.execute(
        "UPDATE usage_logs SET created_at = now() - interval '40 days' WHERE user_id = $1",
        old_usage,
    )
    email = await account_for_identity(deps, "web:zoe@example.com")
    await deps.db.execute(
        "UPDATE users SET created_at = now() - interval '90 days',"
        " updated_at = now() - interval '90 days' WHERE id = $1",
        email.id,
    )

    assert await purge_anonymous_accounts(deps, older_than=timedelta(days=30)) == 2
    left = {r["id"] for r in await deps.db.fetch("SELECT id FROM users")}
    assert left == {recent, used, linked, email.id}
    assert idle not in left and old_usage not in left
    assert (
        await deps.db.fetchval("SELECT count(*) FROM usage_logs WHERE user_id = $1", old_usage) == 0
    )
    assert await purge_anonymous_accounts(deps) == 0


async def test_purged_visitor_is_saved_again_on_next_charge(
    deps: Deps, make_client: AppFactory
) -> None:
    client = make_client(tier_limits={"free": TierLimits(daily=5, minute=100)})
    assert (await client.post("/api/chat/query", json={"message": "UNI price?"})).status_code == 200
    await deps.db.execute(
        "UPDATE users SET created_at = now() - interval '40 days',"
        " updated_at = now() - interval '40 days'"
    )
    await deps.db.execute("UPDATE usage_logs SET created_at = now() - interval '40 days'")
    assert await purge_anonymous_accounts(deps) == 1
    assert (await client.get("/api/account")).status_code == 200  # still a provisional reader
    assert (await client.post("/api/chat/query", json={"message": "UNI price?"})).status_code == 200
    assert await _rows(deps) == (1, 1)
