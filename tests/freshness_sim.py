"""A simulated hour of questions about the top coins, under the sources' real keyless budgets.

Time is compressed by `scale` (60: an hour in a minute): every budget window, the hot-cache TTL,
the quote-refresh period and the freshness threshold are divided by it, and the fake sources
date their payloads in the same compressed time. Everything else is the real code: the shared
Redis budgets (`tools/http.py`), the analysis cache and snapshots (`tools/analysis.py`), and the
batched quotes (`tools/quotes.py`) refreshed as the warming job would.

Used by `tests/test_tools_budget.py` (small) and `bench/freshness_bench.py` (the full hour).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from chainlens.deps import Deps, make_http_client
from tests.tools_fakes import FakeSources
from tools.analysis import analyze
from tools.http import HttpOptions, RetryPolicy, configure_http, source_budget
from tools.quotes import refresh_quotes
from tools.results import Project, ToolName

HOUR_S = 3600.0
FRESH_S = 15 * 60.0  # the market section counts as fresh under 15 minutes
QUOTE_PERIOD_S = 5 * 60.0  # the warming job refreshes the hot set's quotes every 5 minutes
CG_LAG_S = 60.0  # CoinGecko's own `last_updated` trails real time by about a minute

# What people ask, and which tools that runs (the rule planner's choices for these shapes).
MIX: list[tuple[float, tuple[ToolName, ...]]] = [
    (0.60, ("onchain",)),  # "price of X"
    (0.25, ("onchain", "sentiment", "tokenomics", "team")),  # "research X"
    (0.15, ("tokenomics",)),  # "X tokenomics?"
]


@dataclass
class SimResult:
    scale: float
    questions: int = 0
    market_answers: int = 0  # answers with a market section (the on-chain/market tool ran)
    fresh: int = 0  # ... whose market figures were under FRESH_S old (simulated time)
    from_snapshot: int = 0  # ... served from a snapshot because live data was not to be had
    calls: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    limits: dict[str, tuple[int, float]] = field(default_factory=dict)  # source -> (n, window)
    wall_s: float = 0.0

    @property
    def fresh_share(self) -> float:
        return self.fresh / self.market_answers if self.market_answers else 1.0

    @property
    def snapshot_share(self) -> float:
        return self.from_snapshot / self.market_answers if self.market_answers else 0.0

    def max_in_window(self, source: str) -> int:
        """The most calls to `source` in any of its budget windows."""
        times = sorted(self.calls.get(source, []))
        window = self.limits[source][1]
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] < t - window:
                j += 1
            best = max(best, i - j + 1)
        return best


class _SimSources(FakeSources):
    """The fakes, dating CoinGecko payloads in compressed time and timing every call."""

    def __init__(self, coins: list[str], scale: float, result: SimResult) -> None:
        super().__init__(extra_coins=set(coins))
        self.scale = scale
        self.result = result

    async def handler(self, request: httpx.Request) -> httpx.Response:
        response = await super().handler(request)
        route = self.route(request)
        source = route.split(":")[0]
        self.result.calls[source].append(time.monotonic())
        if route in ("coingecko:coin", "coingecko:markets") and response.status_code == 200:
            stamp = (datetime.now(UTC) - timedelta(seconds=CG_LAG_S / self.scale)).isoformat()
            body: Any = json.loads(response.content)
            for item in body if isinstance(body, list) else [body]:
                item["last_updated"] = stamp
            return httpx.Response(
                200, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
            )
        return response


async def simulate(
    base: Deps,
    *,
    scale: float,
    questions: int,
    coins: int = 100,
    seed: int = 7,
    quotes: bool = True,
) -> SimResult:
    """`questions` spread over one simulated hour about `coins` coins (popularity ~ 1/rank).

    `quotes=False` runs the same hour without the batched quote refresh (the baseline)."""
    result = SimResult(scale=scale)
    ids = [f"sim-coin-{i:03d}" for i in range(coins)]
    sources = _SimSources(ids, scale, result)
    settings = base.settings.model_copy(
        update={
            "coingecko_rate_per_min": 10,
            "github_rate_per_hour": 60,
            "coingecko_api_key": None,
            "cache_ttl_s": max(1, round(300 / scale)),
            "news_feeds": ["https://www.coindesk.com/rss"],
        }
    )
    http = make_http_client(settings, transport=httpx.MockTransport(sources.handler))
    deps = dataclasses.replace(base, settings=settings, http=http)
    configure_http(
        deps,
        HttpOptions(
            retry=RetryPolicy(
                attempts=2,
                base_wait_s=0.001,
                max_wait_s=0.01,
                retry_after_cap_s=0.05,
                limiter_wait_cap_s=5.0 / scale,
            ),
            github_stats_attempts=1,
            github_stats_wait_s=0.0,
            time_scale=scale,
        ),
    )
    cg_host = httpx.URL(str(settings.coingecko_base_url)).host
    gh_host = httpx.URL(str(settings.github_api_url)).host
    for source, host in (("coingecko", cg_host), ("github", gh_host)):
        rate = source_budget(deps, host)
        result.limits[source] = (rate.limit, rate.window_s / scale)

    projects = [Project(id=i, symbol=f"S{n:03d}", name=f"Simcoin {n}") for n, i in enumerate(ids)]
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(coins)]
    duration = HOUR_S / scale
    arrivals = sorted(rng.uniform(0, duration) for _ in range(questions))
    asks = [
        (
            at,
            rng.choices(projects, weights)[0],
            rng.choices([m[1] for m in MIX], [m[0] for m in MIX])[0],
        )
        for at in arrivals
    ]
    started = time.monotonic()

    async def warmer() -> None:
        while True:
            await refresh_quotes(deps, ids)
            await asyncio.sleep(QUOTE_PERIOD_S / scale)

    async def ask(at: float, project: Project, tools: tuple[ToolName, ...]) -> None:
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        outcomes = await analyze(deps, project, tools)
        result.questions += 1
        market = outcomes.get("onchain")
        if market is None:
            return
        result.market_answers += 1
        age = market.result.age_seconds * scale  # back in simulated seconds
        if market.cache != "none" and age < FRESH_S:
            result.fresh += 1
        if market.cache == "stale":
            result.from_snapshot += 1

    warming = asyncio.create_task(warmer() if quotes else asyncio.sleep(0))
    try:
        await asyncio.gather(*(ask(*a) for a in asks))
    finally:
        warming.cancel()
        await http.aclose()
    result.wall_s = time.monotonic() - started
    return result
