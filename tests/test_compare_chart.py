"""A comparison's chart: the projects' prices normalised to 100 at a common start, served at
`/api/chart/compare.png?ids=...` (bounded like the single-project chart), linked from the web
answer, and sent with the answer in Telegram and Discord."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chainlens.charts import answer_overlay, comparison_caption, overlay_title
from chainlens.deps import Deps
from chainlens.i18n import localizer
from chainlens.settings import TierLimits
from tests.conftest import make_test_settings
from tests.tools_fakes import FakeSources, fast_http
from tools.results import Project
from web.app import create_app

DAY = 86_400_000
START = 1_700_000_000_000


def client_for(app: object, ip: str = "203.0.113.9") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 5000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def chart_deps(deps: Deps, database_url: str, redis_url: str, tmp_path: Path) -> Deps:
    settings = make_test_settings(
        database_url,
        redis_url,
        tmp_path,
        redis_prefix=deps.keys.prefix,
        chart_requests_per_min=6,
        chart_render_concurrency=1,
    )
    return dataclasses.replace(deps, settings=settings)


@pytest.fixture
async def client(chart_deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(chart_deps.settings, deps=chart_deps)) as c:
        yield c


async def _snapshot(deps: Deps, project_id: str, prices: list[float], offset_days: int = 0) -> int:
    history = [[START + (i + offset_days) * DAY, p] for i, p in enumerate(prices)]
    return int(
        await deps.db.fetchval(
            "INSERT INTO analysis_snapshots (project_id, module, result) VALUES ($1, 'onchain', $2)"
            " RETURNING id",
            project_id,
            {"price_history": history},
        )
    )


async def test_comparison_chart_is_a_png_cached_per_set_of_snapshots(
    chart_deps: Deps, client: httpx.AsyncClient
) -> None:
    await _snapshot(chart_deps, "uniswap", [5.0, 6.0, 7.0])
    aave = await _snapshot(chart_deps, "aave", [100.0, 90.0, 80.0], offset_days=1)
    first = await client.get("/api/chart/compare.png?ids=uniswap,aave")
    assert first.status_code == 200, first.text
    assert first.content.startswith(b"\x89PNG") and first.headers["content-type"] == "image/png"
    assert first.headers["cache-control"] == "public, max-age=300"
    # the stored history is gone, yet the same snapshots' chart still comes: from the cache
    await chart_deps.db.execute("UPDATE analysis_snapshots SET result = '{}' WHERE id = $1", aave)
    again = await client.get("/api/chart/compare.png?ids=uniswap,aave")
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    assert (
        await client.get(
            "/api/chart/compare.png?ids=uniswap,aave",
            headers={"If-None-Match": first.headers["etag"]},
        )
    ).status_code == 304
    # the order is the legend's: another order is another chart, not a stale copy
    other = await client.get("/api/chart/compare.png?ids=aave,uniswap")
    assert other.status_code == 404  # aave's newest snapshot no longer has a history
    assert other.json()["error"]["details"] == {"missing": ["aave"]}
    # a newer snapshot is a new chart
    await _snapshot(chart_deps, "aave", [80.0, 90.0, 100.0])
    newer = await client.get("/api/chart/compare.png?ids=uniswap,aave")
    assert newer.status_code == 200 and newer.content != first.content
    assert newer.headers["etag"] != first.headers["etag"]
    # the Vietnamese chart is its own picture (its title is Vietnamese)
    vi = await client.get("/api/chart/compare.png?ids=uniswap,aave&lang=vi")
    assert vi.status_code == 200 and vi.content != newer.content


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("", "ids is required"),
        ("?ids=", "ids is required"),
        ("?ids=uniswap", "needs 2 to 3 project ids; got 1"),
        ("?ids=uniswap,aave,solana,ethereum", "needs 2 to 3 project ids; got 4"),
        ("?ids=uniswap,uniswap", "only once"),
        ("?ids=uniswap,Aave", "invalid project id 'Aave'"),
        ("?ids=uniswap,../etc", "invalid project id '../etc'"),
    ],
)
async def test_bad_ids_are_a_clear_400(client: httpx.AsyncClient, query: str, says: str) -> None:
    reply = await client.get("/api/chart/compare.png" + query)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "invalid_request" and says in error["message"], error


async def test_a_project_without_history_is_named_in_the_404(
    chart_deps: Deps, client: httpx.AsyncClient
) -> None:
    await _snapshot(chart_deps, "uniswap", [5.0, 6.0])
    reply = await client.get("/api/chart/compare.png?ids=uniswap,solana,aave")
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["code"] == "no_chart" and "'solana', 'aave'" in error["message"]
    assert error["details"] == {"missing": ["solana", "aave"]}
    # the single-project chart still answers under its own path
    assert (await client.get("/api/chart/uniswap.png")).status_code == 200


async def test_comparison_charts_share_the_per_ip_budget(chart_deps: Deps) -> None:
    await _snapshot(chart_deps, "uniswap", [1.0, 2.0])
    await _snapshot(chart_deps, "aave", [2.0, 1.0])
    app = create_app(chart_deps.settings, deps=chart_deps)
    async with client_for(app, "198.51.100.7") as one, client_for(app, "198.51.100.8") as two:
        statuses = [
            (await one.get("/api/chart/compare.png?ids=uniswap,aave")).status_code for _ in range(3)
        ]
        statuses += [(await one.get("/api/chart/uniswap.png")).status_code for _ in range(3)]
        assert statuses == [200] * 6
        refused = await one.get("/api/chart/compare.png?ids=uniswap,aave")
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await two.get("/api/chart/compare.png?ids=uniswap,aave")).status_code == 200


def test_overlay_title_and_caption_in_both_languages() -> None:
    series = {
        "Solana (SOL)": [(START, 1.0), (START + DAY, 2.0), (START + 2 * DAY, 2.5)],
        "Ethereum (ETH)": [(START + DAY, 3.0), (START + 2 * DAY, 4.0)],
    }
    assert overlay_title(series) == (
        "Solana (SOL) vs Ethereum (ETH): price since 2023-11-15 (start = 100)"
    )
    vi = overlay_title(series, localizer("vi"))
    assert vi.startswith("Solana (SOL) vs Ethereum (ETH): giá từ 15/11/2023")
    projects = [
        Project(id="solana", symbol="sol", name="Solana"),
        Project(id="ethereum", symbol="eth", name="Ethereum"),
    ]
    assert "Solana (SOL) vs Ethereum (ETH)" in comparison_caption(projects, localizer("vi"))
    histories = {"solana": series["Solana (SOL)"], "ethereum": series["Ethereum (ETH)"]}
    png = answer_overlay(projects, histories)
    assert png is not None and png.startswith(b"\x89PNG")
    assert answer_overlay(projects, {"solana": histories["solana"]}) is None


# --- the answer links it (web) ------------------------------------------------------------------


@pytest.fixture
def chat_deps(deps: Deps, with_http: Any, sources: FakeSources) -> Deps:
    limits = dict(deps.settings.tier_limits)
    limits["free"] = TierLimits(daily=5, minute=10)
    settings = deps.settings.model_copy(update={"tier_limits": limits})
    sources.extra_coins |= {"solana", "ethereum"}
    fast: Deps = fast_http(
        with_http(dataclasses.replace(deps, settings=settings), sources.transport())
    )
    return fast


async def test_the_web_comparison_answer_links_its_chart(chat_deps: Deps) -> None:
    async with client_for(create_app(chat_deps.settings, deps=chat_deps)) as c:
        reply = await c.post("/api/chat/query", json={"message": "compare SOL and ETH price"})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["chart_url"] == "/api/chart/compare.png?ids=solana,ethereum"
        assert [p["id"] for p in body["projects"]] == ["solana", "ethereum"]
        assert "| Metric | Solana (SOL) | Ethereum (ETH) |" in body["response"]
        chart = await c.get(body["chart_url"])
        assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")
        vi = await c.post("/api/chat/query", json={"message": "so sánh giá SOL và ETH"})
        assert vi.json()["chart_url"] == "/api/chart/compare.png?ids=solana,ethereum&lang=vi"
        assert (await c.get(vi.json()["chart_url"])).status_code == 200
        single = await c.post("/api/chat/query", json={"message": "SOL price"})
        assert single.json()["chart_url"] == "/api/chart/solana.png"
        assert single.json()["projects"] == []


async def test_the_web_stream_names_every_project_and_each_run(chat_deps: Deps) -> None:
    import json
    import re

    async with client_for(create_app(chat_deps.settings, deps=chat_deps)) as c:
        reply = await c.post("/api/chat/stream", json={"message": "SOL vs ETH tokenomics"})
    events = []
    for block in reply.text.strip().split("\n\n"):
        name = re.search(r"^event: (.*)$", block, re.MULTILINE)
        data = re.search(r"^data: (.*)$", block, re.MULTILINE)
        if name and data:
            events.append((name.group(1), json.loads(data.group(1))))
    plan = dict(events)["plan"]
    assert [p["display"] for p in plan["projects"]] == ["Solana (SOL)", "Ethereum (ETH)"]
    runs = {(d["project_id"], d["status"]) for n, d in events if n == "tool"}
    assert runs == {(p, s) for p in ("solana", "ethereum") for s in ("started", "finished")}
    # tokenomics only: no prices were fetched, so there is no chart to link (as for one project)
    assert dict(events)["final"]["chart_url"] is None
