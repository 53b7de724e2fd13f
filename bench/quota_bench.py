"""consume_request against a raw Redis EVALSHA round trip, measured in the same run; then the
chat hot path's quota + turn-cache replay as two Redis calls (what a Redis Cluster does, and
what every Redis did before the replay rode in the quota script) against one script.

Usage: DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/quota_bench.py [--n 20000]
       [--concurrency 50]
Creates a scratch database next to DATABASE_URL's and drops it afterwards; Redis keys use a
unique prefix and are deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _scratch import REDIS_URL, scratch_space
from agent import answer, turn_cache
from billing.accounts import Account, account_for_identity, set_base_tier
from billing.quota import consume_request, flush_pending
from chainlens.chat import ChatTurn, replay_rider
from chainlens.deps import Deps, open_deps
from chainlens.settings import Settings, TierLimits
from tests.tools_fakes import FakeSources, fast_http

RAW_LUA = "local v = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 60) return v"


async def measure(
    name: str, n: int, concurrency: int, op: Callable[[], Awaitable[object]], *, quiet: bool = False
) -> dict[str, float]:
    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            t = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    result = {
        "ops_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }
    if not quiet:
        print(
            f"{name:<22} {result['ops_s']:>10.0f} ops/s   p50 {result['p50_ms']:.3f} ms   "
            f"p99 {result['p99_ms']:.3f} ms"
        )
    return result


async def main(n: int, concurrency: int) -> None:
    async with scratch_space() as (db_url, prefix):
        settings = Settings(
            _env_file=None,
            environment="test",
            database_url=db_url,  # type: ignore[call-arg]
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            llm_models=[],
            tier_limits={"pro": TierLimits(daily=10**9, minute=10**9)},
        )
        async with open_deps(settings) as deps:
            account = await account_for_identity(deps, "telegram:1")
            account = await set_base_tier(deps, account.id, "pro")
            sha = await deps.redis.script_load(RAW_LUA)
            raw_key = deps.keys("bench", "raw")

            async def raw() -> object:
                return await deps.redis.evalsha(sha, 1, raw_key)  # type: ignore[misc]

            async def consume() -> object:
                return await consume_request(deps, account)

            await measure("warm-up", 2000, concurrency, consume)
            await measure("warm-up", 2000, concurrency, raw)
            print(f"n={n} concurrency={concurrency}")
            base = await measure("raw EVALSHA", n, concurrency, raw)
            ours = await measure("consume_request", n, concurrency, consume)
            print(
                f"ratio (consume/raw): throughput {base['ops_s'] / ours['ops_s']:.2f}x slower, "
                f"p99 {ours['p99_ms'] / base['p99_ms']:.2f}x   (goal: within 1.5x)"
            )
            base1 = await measure("raw EVALSHA c=1", n // 4, 1, raw)
            ours1 = await measure("consume_request c=1", n // 4, 1, consume)
            print(
                f"ratio at concurrency 1: p50 {ours1['p50_ms'] / base1['p50_ms']:.2f}x, "
                f"p99 {ours1['p99_ms'] / base1['p99_ms']:.2f}x"
            )
            await hot_path(deps, account, n // 2, concurrency)
            await flush_pending(deps)


async def hot_path(deps: Deps, account: Account, n: int, concurrency: int) -> None:
    """A cached question's quota and replay: two calls (consume, then replay) against one
    (the replay riding in the quota script), same process, same stored turn, same Redis."""
    fake = dataclasses.replace(deps, http=httpx.AsyncClient(transport=FakeSources().transport()))
    first = await answer(fast_http(fake), "Research Uniswap")  # fills the caches, stores the turn
    await fake.http.aclose()
    turn = ChatTurn(
        identity="telegram:1",
        channel="telegram",
        text="Research Uniswap",
        conversation_id="telegram:1:bench",
    )
    key = turn_cache.turn_key(deps, "Research Uniswap", None, "en")

    async def two_calls() -> object:
        decision = await consume_request(deps, account)
        found = await turn_cache.replay(
            deps, key, conversation_id=turn.conversation_id, started=time.perf_counter()
        )
        assert decision.allowed and found is not None and found.final.answer == first.answer
        return found

    async def one_script() -> object:
        decision = await consume_request(deps, account, rider=replay_rider(deps, turn))
        assert decision.ridden is not None
        found = await turn_cache.replay(
            deps,
            key,
            conversation_id=turn.conversation_id,
            started=time.perf_counter(),
            reply=decision.ridden[1],
        )
        assert decision.allowed and found is not None and found.final.answer == first.answer
        return found

    await measure("warm-up", 1000, concurrency, two_calls)
    await measure("warm-up", 1000, concurrency, one_script)
    print(
        f"quota + replay of a stored answer, n={n} per variant in 8 alternating rounds, "
        "medians (the machine is shared: compare within this run only)"
    )
    for c in (concurrency, 1):
        rounds: dict[str, list[dict[str, float]]] = {"two calls": [], "one script": []}
        per_round = max(c, (n if c > 1 else n // 4) // 8)
        for _ in range(8):
            for name, op in (("two calls", two_calls), ("one script", one_script)):
                rounds[name].append(await measure(f"{name} c={c}", per_round, c, op, quiet=True))
        med = {
            name: {k: statistics.median(r[k] for r in figures) for k in figures[0]}
            for name, figures in rounds.items()
        }
        for name, figures in med.items():
            print(
                f"{name + f' c={c}':<22} {figures['ops_s']:>10.0f} ops/s   "
                f"p50 {figures['p50_ms']:.3f} ms   p99 {figures['p99_ms']:.3f} ms"
            )
        one, two = med["one script"], med["two calls"]
        print(
            f"one script vs two calls at concurrency {c}: throughput "
            f"{one['ops_s'] / two['ops_s']:.2f}x, p50 {one['p50_ms'] / two['p50_ms']:.2f}x, "
            f"p99 {one['p99_ms'] / two['p99_ms']:.2f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency))
