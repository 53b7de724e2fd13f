"""Benchmark the analysis tools: parallel fan-out and the cost of a cache hit.

Uses the real PostgreSQL and Redis from DATABASE_URL / REDIS_URL (a throwaway database and
key prefix), and fake data sources behind an httpx.MockTransport that add 150 ms per call.
Prints figures; asserts nothing.

    .venv/bin/python bench/tools_bench.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _scratch import REDIS_URL, scratch_space
from chainlens.deps import Deps, open_deps
from chainlens.settings import Settings
from tests.tools_fakes import UNISWAP, FakeSources
from tools.analysis import analyze, run_tool
from tools.http import HttpOptions, configure_http
from tools.results import TOOL_NAMES

LATENCY_S = 0.150
ROUNDS = 5
HITS = 3000


class TimedSources(FakeSources):
    """Fake sources that also sum the time each upstream call took."""

    spent_s: float = 0.0

    async def handler(self, request: httpx.Request) -> httpx.Response:
        start = time.perf_counter()
        try:
            return await super().handler(request)
        finally:
            self.spent_s += time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def fan_out(deps: Deps, fake: TimedSources) -> None:
    ratios, walls = [], []
    for _ in range(ROUNDS):
        configure_http(deps, HttpOptions())  # fresh memo and limiters: every call goes upstream
        await deps.redis.delete(deps.keys("defillama", "slugs", "v1"))
        fake.calls.clear()
        fake.spent_s = 0.0
        start = time.perf_counter()
        outcomes = await analyze(deps, UNISWAP, TOOL_NAMES, refresh=True)
        wall = time.perf_counter() - start
        assert all(o.cache == "live" for o in outcomes.values()), outcomes
        ratios.append(fake.spent_s / wall)
        walls.append(wall)
    calls = sum(fake.calls.values())
    print(f"4-tool analysis, {LATENCY_S * 1000:.0f} ms per source call, {ROUNDS} rounds")
    print(f"  upstream calls per analysis : {calls} ({', '.join(sorted(fake.calls))})")
    print(f"  sum of source latencies     : {fake.spent_s * 1000:.0f} ms")
    print(f"  wall time (median)          : {statistics.median(walls) * 1000:.0f} ms")
    print(f"  sum / wall (median)         : {statistics.median(ratios):.2f}  (goal >= 3.5)")


async def cache_hits(deps: Deps) -> None:
    await run_tool(deps, "onchain", UNISWAP)  # fill the hot entry
    cpu, wall = [], []
    for _ in range(HITS):
        c0, w0 = time.process_time(), time.perf_counter()
        outcome = await run_tool(deps, "onchain", UNISWAP)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        assert outcome.cache == "hot"
    print(f"cache hit (onchain, 200-point chart), {HITS} hits")
    print(f"  CPU  p50 {pct(cpu, 0.5) * 1e6:.0f} us   p99 {pct(cpu, 0.99) * 1e6:.0f} us")
    print(
        f"  wall p50 {pct(wall, 0.5) * 1e6:.0f} us   p99 {pct(wall, 0.99) * 1e6:.0f} us "
        "(includes the Redis round trip)"
    )


async def main() -> None:
    fake = TimedSources(latency_s=LATENCY_S)
    async with scratch_space() as (db_url, prefix):
        settings = Settings(
            _env_file=None,
            environment="test",
            database_url=db_url,  # type: ignore[call-arg]
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            coingecko_rate_per_min=10_000,
            llm_models=[],
        )
        async with open_deps(settings, http_transport=fake.transport()) as deps:
            await fan_out(deps, fake)
            await cache_hits(deps)


if __name__ == "__main__":
    asyncio.run(main())
