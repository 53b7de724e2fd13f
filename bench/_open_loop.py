"""Open-loop load generator for `web_bench.py` (its own process): requests at a fixed arrival
rate, each sent on schedule whether or not earlier ones finished; latency is measured from
the scheduled send time, so a stalled server is charged for the requests it made wait
(no coordinated omission).

    python bench/_open_loop.py URL RATE SECONDS [API_KEY]   -> one JSON line on stdout
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

BODY = b'{"message": "Research Uniswap"}'


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def run(url: str, rate: float, seconds: float, key: str | None) -> dict[str, float]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    late_sends = 0
    # No cap on connections: a request waits for the server, never for the generator's pool.
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:

        async def one(scheduled: float) -> None:
            nonlocal errors
            try:
                async with session.post(url, data=BODY) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            latencies.append(time.perf_counter() - scheduled)

        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        began = time.perf_counter() + 0.05
        for i in range(total):
            scheduled = began + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.001:
                late_sends += 1  # the generator itself fell behind (counted, and charged)
            tasks.append(loop.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
    return {
        "rate": rate,
        "sent": total,
        "achieved_rps": total / wall,
        "errors": errors,
        "late_sends": late_sends,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p90_ms": percentile(latencies, 0.9) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=0.0) * 1000,
    }


if __name__ == "__main__":
    result = asyncio.run(
        run(
            sys.argv[1],
            float(sys.argv[2]),
            float(sys.argv[3]),
            sys.argv[4] if len(sys.argv) > 4 else None,
        )
    )
    print(json.dumps(result))
