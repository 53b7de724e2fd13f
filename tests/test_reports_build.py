"""The daily report: built from the tools' cached data, stored once per date, rendered per
channel within each platform's limits, archived on the web."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date

import httpx
import pytest

from chainlens.deps import Deps
from reports import render
from reports.build import build_report
from reports.store import get_report, save_report
from test_agent_support import (  # noqa: F401  (fixtures)
    Fail,
    FakeLLM,
    Reply,
    llm_server,
    llm_server_session,
    with_llm,
)
from tests.fake_delivery_discord import embed_problems
from tests.fake_delivery_sources import ReportSources
from tests.fake_delivery_telegram import parse_html
from tests.tools_fakes import fast_http

DAY = date(2026, 12, 1)


@pytest.fixture
def report_sources() -> ReportSources:
    return ReportSources()


@pytest.fixture
def rdeps(
    deps: Deps,
    with_http: Callable[[Deps, httpx.AsyncBaseTransport], Deps],
    report_sources: ReportSources,
) -> Deps:
    return fast_http(with_http(deps, report_sources.transport()))


async def ask_about(
    deps: Deps, project_id: str, symbol: str, name: str, n: int, day: date = DAY
) -> None:
    await deps.db.execute(
        "INSERT INTO projects (id, symbol, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        project_id,
        symbol,
        name,
    )
    await deps.db.execute(
        "INSERT INTO project_usage (project_id, day, requests) VALUES ($1, $2, $3)",
        project_id,
        day,
        n,
    )


async def test_report_content_comes_from_tool_data(
    rdeps: Deps, report_sources: ReportSources
) -> None:
    await ask_about(rdeps, "uniswap", "uni", "Uniswap", 7)
    await ask_about(rdeps, "bitcoin", "btc", "Bitcoin", 3, date(2026, 11, 30))
    await ask_about(rdeps, "bitcoin-old", "old", "Old", 50, date(2026, 11, 20))  # outside 24 h
    content, chart = await build_report(rdeps, DAY)

    assert [(p.id, p.query_count) for p in content.projects] == [("uniswap", 7), ("bitcoin", 3)]
    uni = content.projects[0]
    assert uni.price_usd == 10.0 and uni.change_24h_pct == 2.5  # the fake coin page's figures
    assert uni.sentiment_score is not None and uni.insight
    assert "mintable" in " ".join(uni.risk_flags).lower()  # GoPlus is_mintable=1
    assert content.market.btc.price_usd == 10.0
    assert content.market.total_market_cap_usd == 2.4e12
    assert content.market.fear_greed == 69 and content.market.fear_greed_label == "Greed"
    assert content.movers[0] in ("uniswap", "bitcoin")
    assert content.intro_by == "deterministic" and "Uniswap" in content.intro
    assert chart is not None and chart.startswith(b"\x89PNG") and content.has_chart

    # A second build reads the cache: no new upstream call for the coin pages.
    coin_calls = report_sources.calls["coingecko:coin"]
    await build_report(rdeps, DAY)
    assert report_sources.calls["coingecko:coin"] == coin_calls


async def test_missing_market_data_is_said_not_invented(
    rdeps: Deps, report_sources: ReportSources
) -> None:
    report_sources.down.add("feargreed")
    report_sources.script(
        "coingecko:global", httpx.Response(500), httpx.Response(500), httpx.Response(500)
    )
    await ask_about(rdeps, "uniswap", "uni", "Uniswap", 2)
    content, _ = await build_report(rdeps, DAY)
    assert content.market.fear_greed is None and "fear_greed" in content.market.missing
    assert content.market.total_market_cap_usd is None
    text = render.report_markdown(content, "full")
    assert "Fear & Greed" not in text and "Total market cap" not in text


async def test_rebuild_replaces_atomically_and_keeps_one_row(rdeps: Deps) -> None:
    await ask_about(rdeps, "uniswap", "uni", "Uniswap", 2)
    content, chart = await build_report(rdeps, DAY)
    first = await save_report(rdeps, content, chart)
    await ask_about(rdeps, "bitcoin", "btc", "Bitcoin", 9)
    content2, chart2 = await build_report(rdeps, DAY)
    second = await save_report(rdeps, content2, chart2)
    assert (first.builds, second.builds) == (1, 2)
    assert await rdeps.db.fetchval("SELECT count(*) FROM daily_reports") == 1
    stored = await get_report(rdeps, DAY)
    assert stored is not None and stored.content.projects[0].id == "bitcoin"


async def test_renderings_fit_each_platform(rdeps: Deps) -> None:
    for i in range(25):  # many projects with long names: the limits must still hold
        await ask_about(rdeps, f"coin-{i}", f"c{i}", f"Coin <{i}> & *Friends* " + "x" * 60, 30 - i)
    await ask_about(rdeps, "uniswap", "uni", "Uniswap", 40)
    settings = rdeps.settings.model_copy(update={"report_top_n": 25})
    content, _ = await build_report(dataclasses.replace(rdeps, settings=settings), DAY)
    assert len(content.projects) == 25
    for edition in ("headline", "full"):
        parts = render.telegram_parts(content, edition, full_url="https://x.test/reports/d")
        for part in parts:
            visible = parse_html(part.html)  # raises on HTML Telegram would refuse
            assert len(visible) <= (1024 if part.kind == "photo" else 4096)
        assert "&lt;0&gt; &amp; *Friends*" in parts[-1].html or edition == "headline"
        message = render.discord_message(content, edition, full_url="https://x.test/r")
        assert embed_problems({"embeds": message.embeds}) == []
        mail = render.email_message(
            content, edition, full_url="https://x.test/r", chart_url="https://x.test/c.png"
        )
        assert "%unsubscribe_url%" in mail.html and "%unsubscribe_url%" in mail.text
        assert "<0>" not in mail.html  # escaped by the markdown renderer
    headline = render.report_markdown(content, "headline", full_url="https://x.test/r")
    full = render.report_markdown(content, "full")
    assert headline.count("\n1. ") + headline.count("\n3. ") == 2 and "\n4. " not in headline
    assert "Risk flags" in full and "Risk flags" not in headline


async def test_web_archive_and_api(rdeps: Deps) -> None:
    from tests.conftest import paid_api_key
    from web.app import create_app

    await ask_about(rdeps, "uniswap", "uni", "Uniswap", 5)
    content, chart = await build_report(rdeps, DAY)
    await save_report(rdeps, content, chart)
    key = await paid_api_key(rdeps, "pro")
    app = create_app(rdeps.settings, deps=rdeps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as web:
        index = await web.get("/reports")
        assert index.status_code == 200 and "/reports/2026-12-01" in index.text
        assert 'action="/reports/subscribe"' in index.text
        page = await web.get("/reports/2026-12-01")
        assert page.status_code == 200 and "Uniswap" in page.text and "chart.png" in page.text
        assert "headline edition" in page.text  # anonymous = free
        png = await web.get("/reports/2026-12-01/chart.png")
        assert png.headers["content-type"] == "image/png" and png.content == chart
        free = (await web.get("/api/reports/2026-12-01")).json()
        assert free["edition"] == "headline" and free["topProjects"][0]["projectId"] == "uniswap"
        assert free["projects"][0]["risk_flags"] == []
        paid = (
            await web.get("/api/reports/2026-12-01", headers={"Authorization": f"Bearer {key}"})
        ).json()
        assert paid["edition"] == "full" and paid["projects"][0]["risk_flags"]
        assert (await web.get("/api/reports/2026-11-01")).status_code == 404
        assert (await web.get("/api/reports/not-a-date")).status_code == 400
        assert (await web.get("/api/reports/generate")).status_code == 401
        built = await web.get(
            "/api/reports/generate",
            params={"day": "2026-12-01"},
            headers={"X-Admin-Key": "test-admin-key-0123456789"},
        )
        assert built.status_code == 200
        body = built.json()
        assert set(body) == {"date", "topProjects", "generatedAt"}
        assert body["topProjects"][0] == {
            "projectId": "uniswap",
            "queryCount": 5,
            "priceChange24h": 2.5,
            "sentimentScore": content.projects[0].sentiment_score,
        }
    stored = await get_report(rdeps, DAY)
    assert stored is not None and stored.builds == 2


async def test_intro_by_the_model_only_with_figures_from_the_data(
    rdeps: Deps, llm_server: FakeLLM
) -> None:
    await ask_about(rdeps, "uniswap", "uni", "Uniswap", 4)
    llm = with_llm(rdeps, llm_server, "writer")
    grounded = "Markets are calm: Bitcoin is +2.5% and Uniswap drew 4 questions."
    invented = "Bitcoin will reach 250000 this year while Uniswap drew 4 questions."
    # one opening per language (English, then Vietnamese), each checked against its own facts
    grounded_vi = "Thị trường bình lặng: Bitcoin tăng +2,5% và Uniswap có 4 câu hỏi."
    llm_server.script(
        "writer",
        Reply(text=grounded),
        Reply(text=grounded_vi),
        Reply(text=invented),
        Reply(text=invented),
        Fail(500),
        Fail(500),
    )
    content, _ = await build_report(llm, DAY)
    assert content.intro == grounded and "writer" in content.intro_by
    assert content.intro_in("vi").text == grounded_vi and "writer" in content.intro_in("vi").by
    prompts = [str(r["messages"][0]["content"]) for r in llm_server.requests[-2:]]
    assert "Write in English." in prompts[0] and "Write in Vietnamese." in prompts[1]
    assert "+2,5%" in str(llm_server.requests[-1]["messages"][1]["content"])  # vi figures
    content, _ = await build_report(llm, DAY)  # a figure the data does not have: refused
    assert content.intro_by == "deterministic" and "250000" not in content.intro
    assert content.intro_in("vi").by == "deterministic"
    assert content.intro_in("vi").text.startswith("Bitcoin ")
    content, _ = await build_report(llm, DAY)  # the model is down: the writer's intro
    assert content.intro_by == "deterministic" and content.intro.startswith("Bitcoin is")
