"""Daily report build for 20 projects from a warm cache, next to the same 20 analyses run one
by one (cold, then warm), measured in the same run.

Usage: DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/report_bench.py
         [--projects 20] [--upstream-ms 150]

Data APIs are the synthetic recorded shapes of tests/tools_fakes.py served in-process with
`--upstream-ms` of latency per call (no internet). Goal: the build under 5 s from a warm
cache (the seed's target was 30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _scratch import REDIS_URL, scratch_space
from tests.fake_delivery_sources import ReportSources
from tests.tools_fakes import UNI_ADDRESS, coin_body, json_response


class AnyCoinSources(ReportSources):
    """Every CoinGecko id has a coin page (the report needs 20 distinct projects)."""

    def default(self, route: str, request: httpx.Request) -> httpx.Response:
        if route == "coingecko:coin":
            return json_response(coin_body(request.url.path.rsplit("/", 1)[-1]))
        return super().default(route, request)


async def main(n: int, upstream_ms: float) -> None:
    from chainlens.deps import make_http_client, open_deps
    from chainlens.settings import Settings
    from reports.build import REPORT_TOOLS, build_report
    from tests.tools_fakes import fast_http
    from tools.analysis import analyze
    from tools.results import Project
    from tools.warm import known_projects

    sources = AnyCoinSources(latency_s=upstream_ms / 1000)
    async with scratch_space() as (db_url, prefix):
        settings = Settings(
            _env_file=None,
            environment="test",
            database_url=db_url,  # type: ignore[call-arg]
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            llm_models=[],
            report_top_n=n,
        )
        async with open_deps(settings) as base:
            client = make_http_client(settings, transport=sources.transport())
            deps = fast_http(dataclasses.replace(base, http=client))
            today = datetime.now(UTC).date()
            for i in range(n):
                await deps.db.execute(
                    "INSERT INTO projects (id, symbol, name, platforms) VALUES ($1, $2, $3, $4)",
                    f"coin-{i}",
                    f"c{i}",
                    f"Coin {i}",
                    {"ethereum": UNI_ADDRESS},
                )
                await deps.db.execute(
                    "INSERT INTO project_usage VALUES ($1, $2, $3)", f"coin-{i}", today, 100 - i
                )
            projects: list[Project] = await known_projects(deps, [f"coin-{i}" for i in range(n)])

            started = time.perf_counter()
            for project in projects:  # baseline: one by one, nothing cached
                await analyze(deps, project, REPORT_TOOLS)
            cold_serial = time.perf_counter() - started
            calls_cold = sum(sources.calls.values())

            started = time.perf_counter()
            for project in projects:  # the same, now from the cache
                await analyze(deps, project, REPORT_TOOLS)
            warm_serial = time.perf_counter() - started

            # the market overview's coins are warm too (the warming job keeps them hot), and
            # matplotlib is imported once per worker process, not per build
            from reports.build import BTC, ETH, change_chart, market_overview

            await market_overview(deps)
            import matplotlib.figure  # noqa: F401

            sources.calls.clear()
            started = time.perf_counter()
            content, chart = await build_report(deps, today)
            build = time.perf_counter() - started
            started = time.perf_counter()
            change_chart(content.projects, today)
            chart_s = time.perf_counter() - started
            assert BTC.id and ETH.id
            calls_build = sum(sources.calls.values())
            await client.aclose()

    print(
        f"{n} projects x tools {', '.join(REPORT_TOOLS)}; upstream latency {upstream_ms:g} ms "
        "per call"
    )
    print(f"one by one, cold cache : {cold_serial:7.2f} s  ({calls_cold} upstream calls)")
    print(f"one by one, warm cache : {warm_serial:7.2f} s")
    print(
        f"report build, warm     : {build:7.2f} s  ({calls_build} upstream calls; "
        f"{len(content.projects)} projects, chart "
        f"{len(chart or b'') // 1024} KiB, of which rendering the chart {chart_s:.2f} s)"
        "   goal < 5 s"
    )
    print(f"build vs cold one-by-one: {cold_serial / build:.1f}x faster")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--upstream-ms", type=float, default=150.0)
    args = parser.parse_args()
    asyncio.run(main(args.projects, args.upstream_ms))
