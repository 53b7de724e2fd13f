"""The agent's interfaces: `POST /api/v1/analysis/comprehensive`, `chainlens plan` and `ask`."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner

from chainlens.cli import main
from chainlens.settings import Settings
from tests.tools_fakes import FakeSources


async def test_comprehensive_returns_the_seed_shape(paid_client: httpx.AsyncClient) -> None:
    response = await paid_client.post(
        "/api/v1/analysis/comprehensive",
        json={"symbol": "UNI", "options": {"depth": "standard", "format": "markdown"}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"].startswith("Uniswap (UNI)")
    assert 1 <= body["risk_score"] <= 10
    assert body["investment_rating"] in ("BUY", "HOLD", "SELL", "AVOID")
    assert len(body["key_insights"]) == 3
    assert set(body["detailed_sections"]) == {"onchain", "sentiment", "tokenomics", "team"}
    assert body["detailed_sections"]["onchain"]["key_facts"]
    meta = body["metadata"]
    assert meta["total_latency_ms"] > 0
    assert sorted(meta["modules_completed"]) == ["onchain", "sentiment", "team", "tokenomics"]
    assert meta["writer"] == "deterministic" and meta["project"]["id"] == "uniswap"
    assert "Not financial advice" in body["markdown"]


async def test_comprehensive_runs_only_the_modules_asked_for(
    paid_client: httpx.AsyncClient,
) -> None:
    response = await paid_client.post(
        "/api/v1/analysis/comprehensive", json={"symbol": "uniswap", "modules": ["team"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body["detailed_sections"]) == ["team"] and body["markdown"] is None
    quick = await paid_client.post(
        "/api/v1/analysis/comprehensive", json={"symbol": "uniswap", "options": {"depth": "quick"}}
    )
    assert sorted(quick.json()["detailed_sections"]) == ["onchain", "sentiment"]


async def test_comprehensive_errors(paid_client: httpx.AsyncClient, sources: FakeSources) -> None:
    bad = await paid_client.post(
        "/api/v1/analysis/comprehensive", json={"symbol": "UNI", "modules": ["astrology"]}
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    missing = await paid_client.post("/api/v1/analysis/comprehensive", json={"symbol": "zzqxv"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "project_not_found"


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setenv("LLM_MODELS", "")
    # Every data source on a closed local port: the commands must still answer, not hang.
    for var in (
        "COINGECKO_BASE_URL",
        "DEFILLAMA_BASE_URL",
        "GOPLUS_BASE_URL",
        "GITHUB_API_URL",
        "FEAR_GREED_URL",
    ):
        monkeypatch.setenv(var, "http://127.0.0.1:9/x")
    monkeypatch.setenv("NEWS_FEEDS", "http://127.0.0.1:9/feed.xml")
    monkeypatch.setenv("HTTP_TIMEOUT_S", "0.5")


def test_plan_prints_one_json_object_per_question(cli_env: None) -> None:
    single = CliRunner().invoke(main, ["plan", "Analyze Curve"])
    assert single.exit_code == 0, single.output
    assert json.loads(single.stdout) == {
        "project_id": "curve-dao-token",
        "router": "rules",
        "tools": ["onchain", "sentiment", "team", "tokenomics"],
    }
    lines = "what's SOL trading at?\ngood morning\nwhen is the next OP unlock?\n"
    many = CliRunner().invoke(main, ["plan", "-"], input=lines)
    assert many.exit_code == 0, many.output
    plans = [json.loads(line) for line in many.stdout.splitlines()]
    assert plans == [
        {"project_id": "solana", "tools": ["onchain"], "router": "rules"},
        {"project_id": None, "tools": [], "router": "rules"},
        {"project_id": "optimism", "tools": ["tokenomics"], "router": "rules"},
    ]


def test_ask_answers_in_the_terminal_with_progress_on_stderr(cli_env: None) -> None:
    result = CliRunner().invoke(main, ["ask", "what's SOL trading at?"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("## Solana (SOL)")
    # every source is down: it says so plainly instead of an empty analysis
    assert "couldn't get any data" in result.stdout and "not charged" in result.stdout
    assert "onchain" in result.stderr
