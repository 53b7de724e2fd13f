"""A simulated hour: 1,000 questions about the top 100 coins under the real keyless budgets.

Time is compressed 60x (the hour takes a minute; budget windows, cache TTL and quote period
scale with it; see tests/freshness_sim.py). Prints, for the real setup and for a baseline
without the batched quote refresh measured in the same run: the share of answers whose market
figures are under 15 minutes old (goal >= 95 %), upstream calls per source against its budget
in its busiest window (goal <= 100 %), and the share served from snapshots. Asserts nothing.

Uses DATABASE_URL / REDIS_URL (a throwaway database and key prefix).

    .venv/bin/python bench/freshness_bench.py [--scale 60] [--questions 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _scratch import REDIS_URL, scratch_space
from chainlens.deps import open_deps
from tests.conftest import make_test_settings
from tests.freshness_sim import SimResult, simulate


def line(label: str, r: SimResult) -> str:
    budgets = ", ".join(
        f"{src} {len(r.calls.get(src, []))} calls, busiest window {r.max_in_window(src)}/{lim}"
        f" ({r.max_in_window(src) / lim:.0%})"
        for src, (lim, _w) in sorted(r.limits.items())
    )
    return (
        f"{label:<22} fresh {r.fresh_share:6.1%} of {r.market_answers} market answers · "
        f"from snapshots {r.snapshot_share:5.1%} · {budgets} · wall {r.wall_s:.0f} s"
    )


async def main(scale: float, questions: int) -> None:
    results = []
    for quotes in (False, True):
        async with scratch_space() as (db_url, prefix):
            settings = make_test_settings(
                db_url, REDIS_URL, Path(tempfile.mkdtemp()), redis_prefix=prefix
            )
            async with open_deps(settings) as deps:
                results.append(
                    await simulate(deps, scale=scale, questions=questions, quotes=quotes)
                )
    print(
        f"simulated hour: {questions} questions, 100 coins, CoinGecko 10/min and GitHub "
        f"60/h keyless, time compressed {scale:g}x"
    )
    print(line("baseline (no quotes)", results[0]))
    print(line("batched quotes", results[1]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=60.0)
    parser.add_argument("--questions", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.scale, args.questions))
