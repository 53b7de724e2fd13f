"""Migrations, health, readiness, metrics and the network guard on real PostgreSQL/Redis."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg
import httpx
import pytest

from chainlens.deps import Deps, open_deps
from chainlens.embedded import EmbeddedPostgres
from chainlens.migrate import MIGRATIONS_DIR, apply_migrations, discover
from chainlens.settings import Settings
from tests.conftest import InternetAccessError, make_test_settings
from web.app import create_app

SEED_TABLES = {
    "users",
    "subscriptions",
    "usage_logs",
    "report_subscribers",
    "project_usage",
    "daily_reports",
    "query_logs",
    "projects",
    "analysis_snapshots",
    "schema_migrations",
}


ADMIN = {"X-Admin-Key": "test-admin-key-0123456789"}  # reasons and metrics need the admin key


def client_for(deps: Deps) -> httpx.AsyncClient:
    app = create_app(deps.settings, deps=deps)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_seed_tables_exist(deps: Deps) -> None:
    rows = await deps.db.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
    assert {r["tablename"] for r in rows} >= SEED_TABLES
    versions = await deps.db.fetchval("SELECT count(*) FROM schema_migrations")
    assert versions == len(discover())


async def test_migrations_are_idempotent_and_race_free(postgres_admin_url: str) -> None:
    """Five 'replicas' migrate one empty database at once: each file is applied exactly once."""
    admin = await asyncpg.connect(postgres_admin_url)
    name = "chainlens_migrate_race"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    from tests.conftest import _with_database

    url = _with_database(postgres_admin_url, name)
    pools = [await asyncpg.create_pool(url, min_size=1, max_size=2) for _ in range(5)]
    try:
        results = await asyncio.gather(*(apply_migrations(p) for p in pools))
        applied = [name for result in results for name in result]
        assert sorted(applied) == sorted(m.name for m in discover())
        assert await apply_migrations(pools[0]) == []
    finally:
        for pool in pools:
            await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_migration_files_are_numbered() -> None:
    names = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    assert names and names[0].startswith("0001_")
    assert [m.version for m in discover()] == sorted({m.version for m in discover()})


async def test_health_reports_postgres_and_redis_up(deps: Deps) -> None:
    async with client_for(deps) as client:
        response = await client.get("/api/v1/health", headers=ADMIN)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["services"]["postgres"] == "up"
    assert body["services"]["redis"] == "up"
    assert body["services"]["llm"] == "deterministic writer"
    assert "uptime_s" in body["metrics"]


async def test_ready_and_metrics(deps: Deps) -> None:
    async with client_for(deps) as client:
        assert (await client.get("/ready")).text == "ready"
        await client.get("/api/v1/health")
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'chainlens_http_requests_total{method="GET",route="/ready",status="200"} 1.0' in text
    assert (
        'chainlens_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/v1/health"}'
        in text
    )


async def test_redis_down_gives_503_with_reason(deps: Deps) -> None:
    from chainlens.deps import make_redis

    dead = make_redis("redis://127.0.0.1:1/0", deps.settings)
    try:
        import dataclasses

        broken = dataclasses.replace(deps, redis=dead)
        async with client_for(broken) as client:
            health = await client.get("/api/v1/health", headers=ADMIN)
            ready = await client.get("/ready")
    finally:
        await dead.aclose()
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unhealthy"
    assert body["services"]["redis"] == "down"
    assert body["services"]["postgres"] == "up"
    assert "Connect" in body["details"]["redis"] or "refused" in body["details"]["redis"]
    assert ready.status_code == 503


@pytest.mark.slow
async def test_embedded_postgres_killed_then_back(tmp_path: Path, redis_url: str) -> None:
    """Kill the embedded PostgreSQL mid-run: health turns 503 with a reason, then recovers."""
    settings: Settings = make_test_settings(None, redis_url, tmp_path)  # type: ignore[arg-type]
    async with open_deps(settings) as deps:
        embedded = deps.embedded_postgres
        assert isinstance(embedded, EmbeddedPostgres)
        async with client_for(deps) as client:
            assert (await client.get("/api/v1/health")).status_code == 200

            pid = int((embedded.pgdata / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
            for _ in range(50):
                if not embedded.is_running():
                    break
                await asyncio.sleep(0.1)
            down = await client.get("/api/v1/health", headers=ADMIN)
            assert down.status_code == 503
            assert down.json()["services"]["postgres"] == "down"
            assert down.json()["details"]["postgres"]

            await asyncio.to_thread(embedded.restart)
            for _ in range(20):
                back = await client.get("/api/v1/health")
                if back.status_code == 200:
                    break
                await asyncio.sleep(0.25)
            assert back.status_code == 200, back.json()
            assert back.json()["services"]["postgres"] == "up"
        embedded.server.cleanup()


async def test_tests_cannot_reach_the_internet() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(InternetAccessError):
            await client.get("https://api.coingecko.com/api/v3/ping")
