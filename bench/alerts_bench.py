"""One alert evaluation cycle over 100,000 alerts on 1,000 coins.

Usage: DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/alerts_bench.py
         [--alerts 100000] [--coins 1000] [--cycles 5] [--fire-share 0.01]

A scratch database gets `--alerts` active alerts (above / below / 24 h move, on `--coins`
coins, for alerts/5 accounts, every channel), CoinGecko `/simple/price` is the strict local
fake (tests/alerts_fakes.py, in-process, no network). Each cycle moves the prices so that about
`--fire-share` of the alerts cross their level (and as many re-arm), then runs the real
`reports.alerts.evaluate_prices` with the job queue open (firings are deferred as send jobs).

Printed per cycle: wall time, CPU time of this process, database time (the coins query and the
set-based pass, as `evaluate_prices` times them: `CycleSummary.db_s`), upstream calls, firings;
and beside them the baseline measured in the same run: one `SELECT` of the active alerts table
(all rows fetched to the client). Goals: database time under 1 s per cycle; upstream calls =
ceil(coins / IDS_PER_CALL), never one per alert.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _scratch import REDIS_URL, scratch_space


async def seed(deps: object, n_alerts: int, n_coins: int, base: dict[str, float]) -> None:
    """Accounts and alerts in a few set-based statements."""
    db = deps.db  # type: ignore[attr-defined]
    accounts = max(1, n_alerts // 5)
    await db.execute("INSERT INTO users (tier) SELECT 'pro' FROM generate_series(1, $1)", accounts)
    coins = list(base)
    rng = random.Random(7)
    rows = []
    for i in range(n_alerts):
        coin = coins[i % n_coins]
        kind = ("above", "below", "move")[i % 3]
        price = base[coin]
        if kind == "above":
            level = price * rng.uniform(1.001, 1.2)
        elif kind == "below":
            level = price * rng.uniform(0.8, 0.999)
        else:
            level = rng.choice((5.0, 10.0, 15.0, 20.0))
        channel = ("telegram", "discord", "email")[i % 3]
        dest = (
            str(100000 + i % accounts) if channel != "email" else f"user{i % accounts}@example.com"
        )
        rows.append(
            (1 + i % accounts, coin, f"Coin {coin} ({coin.upper()})", kind, level, channel, dest)
        )
    await db.copy_records_to_table(
        "alerts",
        records=rows,
        columns=["user_id", "project_id", "display", "kind", "level", "channel", "destination"],
    )
    await db.execute("ANALYZE alerts")


async def main(n_alerts: int, n_coins: int, cycles: int, fire_share: float) -> None:
    from chainlens.deps import make_http_client, open_deps
    from chainlens.settings import Settings
    from reports import alerts
    from reports.queue import open_queue
    from tests.alerts_fakes import PriceSources
    from tests.tools_fakes import fast_http

    prices = PriceSources()
    rng = random.Random(11)
    base = {f"coin-{i:04d}": rng.uniform(0.01, 50_000) for i in range(n_coins)}
    async with scratch_space() as (db_url, prefix):
        settings = Settings(
            _env_file=None,
            environment="test",
            database_url=db_url,  # type: ignore[call-arg]
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            llm_models=[],
            db_pool_max=4,
        )
        async with open_deps(settings) as opened:
            client = make_http_client(settings, transport=prices.transport())
            deps = fast_http(dataclasses.replace(opened, http=client))
            await seed(deps, n_alerts, n_coins, base)
            for coin, price in base.items():
                prices.set(coin, price, 0.0)

            async with open_queue(deps, max_size=4):
                baseline = []
                results = []
                for cycle in range(cycles + 1):
                    # move prices: a share of coins jumps +-20 % (crossing its alerts' levels)
                    movers = set(rng.sample(list(base), max(1, int(n_coins * fire_share * 3))))
                    for coin, price in base.items():
                        if coin in movers and cycle:
                            factor = rng.choice((0.78, 1.22))
                            prices.set(coin, price * factor, (factor - 1) * 100)
                        else:
                            prices.set(coin, price * rng.uniform(0.999, 1.001), 0.5)
                    t = time.perf_counter()
                    rows = await deps.db.fetch(
                        "SELECT id, project_id, kind, level, armed FROM alerts WHERE active"
                    )
                    baseline.append(time.perf_counter() - t)
                    assert len(rows) == n_alerts
                    calls_before = len(prices.price_calls)
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    summary = await alerts.evaluate_prices(deps)
                    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                    calls = len(prices.price_calls) - calls_before
                    if cycle == 0:
                        continue  # warm-up: first prices, nothing crosses
                    results.append(
                        (
                            wall,
                            cpu,
                            summary.db_s,
                            calls,
                            summary.fired,
                            summary.rearmed,
                            summary.deferred,
                        )
                    )
                    print(
                        f"cycle {cycle}: wall {wall * 1000:7.1f} ms  cpu {cpu * 1000:6.1f} ms  "
                        f"db {summary.db_s * 1000:6.1f} ms  upstream calls {calls}  "
                        f"fired {summary.fired}  re-armed {summary.rearmed}  "
                        f"send jobs {summary.deferred}"
                    )
                jobs = await deps.db.fetchval("SELECT count(*) FROM procrastinate_jobs")
                events = await deps.db.fetchval("SELECT count(*) FROM alert_events")
                ledger = await deps.db.fetchval(
                    "SELECT count(*) FROM deliveries WHERE kind = 'alert'"
                )
            await client.aclose()

    expected_calls = math.ceil(n_coins / alerts.IDS_PER_CALL)
    med = statistics.median
    print(f"\n{n_alerts:,} alerts over {n_coins:,} coins, {cycles} cycles (medians):")
    print(f"  evaluation wall   {med([r[0] for r in results]) * 1000:8.1f} ms")
    print(f"  evaluation cpu    {med([r[1] for r in results]) * 1000:8.1f} ms (this process)")
    print(f"  database time     {med([r[2] for r in results]) * 1000:8.1f} ms   (goal < 1000 ms)")
    print(f"  baseline SELECT   {med(baseline) * 1000:8.1f} ms   (all active alerts to the client)")
    print(
        f"  upstream calls    {med([r[3] for r in results]):8.0f}      "
        f"(ceil({n_coins} / {alerts.IDS_PER_CALL}) = {expected_calls})"
    )
    print(
        f"  firings per cycle {med([r[4] for r in results]):8.0f}      "
        f"events {events}, ledger rows {ledger}, send jobs {jobs}"
    )
    ok = all(r[3] == expected_calls for r in results) and events == ledger
    print(
        "  calls per cycle == ceil(coins / ids-per-call) and one ledger row per event:",
        "yes" if ok else "NO",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--coins", type=int, default=1_000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--fire-share", type=float, default=0.01)
    args = parser.parse_args()
    asyncio.run(main(args.alerts, args.coins, args.cycles, args.fire_share))
