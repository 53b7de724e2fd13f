"""The analysis HTTP API and CLI as a paid_client sees them."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from click.testing import CliRunner

from chainlens.cli import main
from chainlens.deps import Deps
from tests.tools_fakes import FakeSources, fast_http
from web.app import create_app

MakeDeps = Callable[[Deps, httpx.AsyncBaseTransport], Deps]
ADMIN = {"Authorization": "Bearer test-admin-key-0123456789"}


async def test_analyze_returns_the_seed_shape_and_then_hits_cache(
    paid_client: httpx.AsyncClient, sources: FakeSources
) -> None:
    response = await paid_client.get(
        "/api/analyze", params={"projectId": "uniswap", "includeAdvanced": "true"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["projectId"] == "uniswap"
    assert body["onchain"]["price_usd"] == 10.0 and body["onchain"]["cache"] == "live"
    assert body["sentiment"]["fear_greed"] == 69
    assert body["tokenomics"]["risk_score"] is not None
    assert body["team"]["audits_status"] == "audited"
    meta = body["metadata"]
    assert meta["cache_hit"] is False and "CoinGecko" in meta["services_called"]
    assert meta["updated_at"]
    calls = sum(sources.calls.values())

    again = (
        await paid_client.get(
            "/api/analyze", params={"projectId": "UNISWAP", "includeAdvanced": "true"}
        )
    ).json()
    assert again["metadata"]["cache_hit"] is True and again["metadata"]["services_called"] == []
    assert sum(sources.calls.values()) == calls


async def test_basic_analysis_skips_advanced_tools(
    paid_client: httpx.AsyncClient, sources: FakeSources
) -> None:
    body = (await paid_client.get("/api/analyze", params={"projectId": "uniswap"})).json()
    assert body["onchain"] is not None and body["sentiment"] is not None
    assert body["tokenomics"] is None and body["team"] is None
    assert sources.total("github") == 0 and sources.calls["goplus"] == 1  # onchain reads holders


async def test_realtime_bypasses_the_cache(
    paid_client: httpx.AsyncClient, sources: FakeSources
) -> None:
    await paid_client.get("/api/analyze", params={"projectId": "uniswap"})
    body = (
        await paid_client.get(
            "/api/analyze", params={"projectId": "uniswap", "includeRealtime": "true"}
        )
    ).json()
    assert body["metadata"]["cache_hit"] is False


async def test_invalid_and_unknown_project_ids(paid_client: httpx.AsyncClient) -> None:
    bad = await paid_client.get("/api/analyze", params={"projectId": "drop table;"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    missing = await paid_client.get("/api/analyze", params={"projectId": "zzqx-not-a-coin-at-all"})
    assert missing.status_code == 404, missing.text
    error = missing.json()["error"]
    assert error["code"] == "project_not_found" and "suggestions" in error["details"]


async def test_cache_refresh_needs_admin_and_refetches(
    paid_client: httpx.AsyncClient, sources: FakeSources
) -> None:
    payload = {"project_ids": ["uniswap", "zzqx-not-a-coin-at-all"], "tools": ["onchain"]}
    denied = await paid_client.post("/api/v1/cache/refresh", json=payload)
    assert denied.status_code == 401
    ok = await paid_client.post("/api/v1/cache/refresh", json=payload, headers=ADMIN)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "refreshed": {"uniswap": {"onchain": "live"}},
        "not_found": ["zzqx-not-a-coin-at-all"],
    }
    again = await paid_client.post("/api/v1/cache/refresh", json=payload, headers=ADMIN)
    assert again.json()["refreshed"]["uniswap"]["onchain"] == "live"
    assert sources.calls["coingecko:coin"] == 1  # memo within a minute; the cache entry is new


def test_cli_commands_are_registered() -> None:
    result = CliRunner().invoke(main, ["analyze", "--help"])
    assert result.exit_code == 0 and "--tools" in result.output
    bad = CliRunner().invoke(main, ["analyze", "uniswap", "--tools", "onchain,astrology"])
    assert bad.exit_code == 2 and "astrology" in bad.output
    assert CliRunner().invoke(main, ["cache", "warm", "--help"]).exit_code == 0


async def test_free_callers_are_charged_and_gated(
    deps: Deps, with_http: MakeDeps, sources: FakeSources
) -> None:
    fdeps = fast_http(with_http(deps, sources.transport()))
    app = create_app(fdeps.settings, deps=fdeps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as anonymous:
        realtime = await anonymous.get(
            "/api/analyze", params={"projectId": "uniswap", "includeRealtime": "true"}
        )
        assert realtime.status_code == 403
        assert realtime.json()["error"]["code"] == "upgrade_required"
        first = await anonymous.get("/api/analyze", params={"projectId": "uniswap"})
        assert first.status_code == 200
        assert first.headers["x-ratelimit-remaining"] == "4"
        # Tier comes from the account: a header claiming enterprise changes nothing.
        second = await anonymous.get(
            "/api/analyze", params={"projectId": "uniswap"}, headers={"X-User-Tier": "enterprise"}
        )
        assert second.status_code == 429  # free: one request per minute
        unknown = await anonymous.get("/api/analyze", params={"projectId": "zzqx-nothing"})
        assert unknown.status_code == 429
