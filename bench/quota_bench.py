"""consume_request against a raw Redis EVALSHA round trip, measured in the same run.

Usage: DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/quota_bench.py [--n 20000]
       [--concurrency 50]
Creates a scratch database next to DATABASE_URL's and drops it afterwards; Redis keys use a
unique prefix and are deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _scratch import REDIS_URL, scratch_space
from billing.accounts import account_for_identity, set_base_tier
from billing.quota import consume_request, flush_pending
from chainlens.deps import open_deps
from chainlens.settings import Settings, TierLimits

RAW_LUA = "local v = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 60) return v"


async def measure(name: str, n: int, concurrency: int, op: Callable[[], Awaitable[object]]) -> dict[str, float]:
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
    result = {"ops_s": len(latencies) / elapsed,
              "p50_ms": statistics.median(latencies) * 1000,
              "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}
    print(f"{name:<22} {result['ops_s']:>10.0f} ops/s   p50 {result['p50_ms']:.3f} ms   "
          f"p99 {result['p99_ms']:.3f} ms")
    return result


async def main(n: int, concurrency: int) -> None:
    async with scratch_space() as (db_url, prefix):
        settings = Settings(_env_file=None, environment="test", database_url=db_url,  # type: ignore[call-arg]
                            redis_url=REDIS_URL, redis_prefix=prefix, llm_models=[],
                            tier_limits={"pro": TierLimits(daily=10**9, minute=10**9)})
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
            print(f"ratio (consume/raw): throughput {base['ops_s'] / ours['ops_s']:.2f}x slower, "
                  f"p99 {ours['p99_ms'] / base['p99_ms']:.2f}x   (goal: within 1.5x)")
            base1 = await measure("raw EVALSHA c=1", n // 4, 1, raw)
            ours1 = await measure("consume_request c=1", n // 4, 1, consume)
            print(f"ratio at concurrency 1: p50 {ours1['p50_ms'] / base1['p50_ms']:.2f}x, "
                  f"p99 {ours1['p99_ms'] / base1['p99_ms']:.2f}x")
            await flush_pending(deps)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency))
