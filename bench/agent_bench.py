"""Agent overhead: graph latency per question over a warm tools cache, with and without a
(local, instant) model, against the tools called directly; and rule-planner throughput.

Run: .venv/bin/python bench/agent_bench.py  (uses DATABASE_URL / REDIS_URL, else embedded)
Prints figures only; nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from agent import answer
from agent.rules import plan_by_rules
from chainlens.deps import Deps, open_deps
from chainlens.settings import Settings
from test_agent_planner import WITH_PROJECT, WITHOUT_PROJECT
from test_agent_support import FakeLLM, Reply, with_llm
from tests.tools_fakes import FakeSources, fast_http
from tools.analysis import run_tool
from tools.resolve import resolve_project
from tools.results import TOOL_NAMES

ROUNDS = 200
QUESTION = "Research Uniswap"
COMPARISON = "compare uniswap, solana and ethereum"  # 3 projects x 4 tools = 12 tool runs
COMPARED = {"solana", "ethereum"}  # served by the fake as copies of uniswap
ANSWER = (
    "**Executive summary.** Uniswap is healthy.\n\n**Top insights**\n1. Deep market.\n"
    "2. Active developers.\n3. Calm mood.\n\n**Key risks**\n- Volatility.\n"
)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):7.2f} ms   p99 {p99:7.2f} ms"


async def timed(
    fn: Callable[[], Awaitable[object]],
    rounds: int,
    before: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    samples = []
    for _ in range(rounds):
        if before is not None:
            await before()
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def direct_tools(deps: Deps) -> None:
    """The baseline: what the graph does minus the graph (resolve + four cached tools)."""
    resolution = await resolve_project(deps, QUESTION)
    assert resolution.project is not None
    await asyncio.gather(*(run_tool(deps, tool, resolution.project) for tool in TOOL_NAMES))


async def clear_answer_cache(deps: Deps) -> None:
    keys = [k async for k in deps.redis.scan_iter(match=deps.keys("agent", "answer", "*"))]
    if keys:
        await deps.redis.delete(*keys)


async def clear_turn_cache(deps: Deps) -> None:
    """Forget replayable turns, so a single answer goes through the graph like a comparison
    (which is never replayed) does."""
    keys = [k async for k in deps.redis.scan_iter(match=deps.keys("agent", "turn", "*"))]
    if keys:
        await deps.redis.delete(*keys)


async def own_database(admin_url: str | None, name: str, *, drop: bool = False) -> str | None:
    """A throwaway database on DATABASE_URL's server (fake data never lands in a real one)."""
    if not admin_url:
        return None  # embedded PostgreSQL in a fresh temporary directory
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            if drop
            else f'CREATE DATABASE "{name}"'
        )
    finally:
        await admin.close()
    return str(urlsplit(admin_url)._replace(path=f"/{name}").geturl())


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    data_dir = Path(tempfile.mkdtemp(prefix="chainlens-bench-"))
    admin_url = os.environ.get("DATABASE_URL") or None
    db_name = f"chainlens_bench_{uuid.uuid4().hex[:8]}"
    try:
        await run(await own_database(admin_url, db_name), data_dir)
    finally:
        await own_database(admin_url, db_name, drop=True)
    planner_throughput()


async def run(database_url: str | None, data_dir: Path) -> None:
    settings = Settings(
        _env_file=None,
        environment="test",  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL") or None,
        redis_prefix=f"bench{uuid.uuid4().hex[:8]}:",
        chainlens_data_dir=data_dir,
        llm_models=[],
    )
    sources = FakeSources(extra_coins=set(COMPARED))
    server = FakeLLM()
    server.start()
    server.default = Reply(text=ANSWER, chunk_chars=40)
    try:
        async with open_deps(settings, http_transport=sources.transport()) as opened:
            deps = fast_http(opened)
            await answer(deps, QUESTION)  # warm: tools now answer from the hot cache
            await direct_tools(deps)
            baseline = await timed(lambda: direct_tools(deps), ROUNDS)
            no_llm = await timed(lambda: answer(deps, QUESTION), ROUNDS)
            # a 3-project comparison beside a single-project answer, both through the graph
            # from the hot tools cache (the turn cache, which a comparison never uses, cleared)
            warm = await answer(deps, COMPARISON)
            assert len(warm.projects) == 3 and warm.plan.intent == "compare"
            forget = functools.partial(clear_turn_cache, deps)
            single = await timed(lambda: answer(deps, QUESTION), ROUNDS, before=forget)
            compared = await timed(lambda: answer(deps, COMPARISON), ROUNDS, before=forget)
            llm_deps = with_llm(deps, server, "bench")
            await answer(llm_deps, QUESTION)
            clear = lambda: clear_answer_cache(llm_deps)  # noqa: E731
            with_model = await timed(lambda: answer(llm_deps, QUESTION), ROUNDS // 2, before=clear)
            cached_model = await timed(lambda: answer(llm_deps, QUESTION), ROUNDS // 2)
            print(f"agent bench: {ROUNDS} rounds of {QUESTION!r}, tools from the hot cache")
            print(f"  baseline: resolve + 4 tools directly      {percentiles(baseline)}")
            print(f"  graph, deterministic writer              {percentiles(no_llm)}")
            print(f"  single project, no turn replay           {percentiles(single)}")
            print(f"  3-project comparison (12 tool runs)      {percentiles(compared)}")
            ratio = statistics.median(compared) / statistics.median(single)
            print(f"  comparison / single at p50: {ratio:.2f}x (goal <= 2x)")
            print(f"  graph, local model (planner + writer)    {percentiles(with_model)}")
            print(f"  graph, local model, answer cache hit     {percentiles(cached_model)}")
            overhead = statistics.median(no_llm) - statistics.median(baseline)
            print(f"  graph overhead without a model (p50 - baseline p50): {overhead:.2f} ms")
            keys = [k async for k in deps.redis.scan_iter(match=settings.redis_prefix + "*")]
            if keys:
                await deps.redis.delete(*keys)
    finally:
        server.stop()


def planner_throughput() -> None:
    questions = [q for q, _ in WITH_PROJECT] + WITHOUT_PROJECT
    rounds = 50
    started = time.perf_counter()
    for _ in range(rounds):
        for q in questions:
            plan_by_rules(q, has_project=True)
    elapsed = time.perf_counter() - started
    print(
        f"  rule planner: {rounds * len(questions) / elapsed:,.0f} questions/s "
        f"({len(questions)} phrasings x {rounds})"
    )


if __name__ == "__main__":
    asyncio.run(main())
