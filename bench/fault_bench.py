"""Fault benchmark: 300 chat requests at concurrency 8 while Redis is killed and restarted,
then PostgreSQL, next to the same 300 requests with no fault, measured in the same run.

    .venv/bin/python bench/fault_bench.py [--requests 300] [--concurrency 8]

The bench owns its servers so it can kill them by pid: a `redis-server` on a Unix socket and
an embedded PostgreSQL (`pgserver`), both in a temporary directory, each run with a fresh
database and Redis prefix. The app is the real one served by uvicorn on loopback
(tests/live_server.py); data APIs are the fake sources the tests use, no LLM (the
deterministic writer). Eight Pro clients ask about Uniswap and Bitcoin: half with an API key
(the process keeps an authenticated key for 2 s, API_KEY_CACHE_S), half signed in on the web
(a session cookie; the account is read from PostgreSQL on every request).

Fault schedule, by completed requests: Redis SIGKILLed at 15 % and started again (empty)
at 30 % but not before 3 s; PostgreSQL SIGKILLed at 45 % (and at least 1.5 s after Redis
is back, so the quota counters are re-seeded first: Redis empty and PostgreSQL down at once is
a documented limit of billing/quota_store.py) and started again (crash recovery) at 50 % but
not before 2.5 s, longer than the 2 s API-key cache, so both regimes show: callers the
process authenticated a moment ago are still answered, the others get 503. Clients behave
like polite ones: after a 503 they wait min(Retry-After, 1 s) before their next request.

Printed per run: answered (200 with an answer) / 503 / 500 / other, answered and latency
per phase, and afterwards charged (quota used, over all accounts) = answered = usage rows
(`usage_logs`, written late for answers given while PostgreSQL was down). Nothing is
asserted; the goal is 0 x 500 and answers continuing while Redis is down.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from billing.accounts import account_for_identity, set_base_tier
from billing.api_keys import create_api_key
from billing.quota import quota_status
from chainlens.deps import open_deps
from chainlens.settings import Settings, TierLimits
from killable import KillablePostgres, KillableRedis
from live_server import LiveServer
from tools_fakes import FakeSources, fast_http
from web.auth import SESSION_COOKIE, session_cookie_value

QUESTIONS = [
    "Research Uniswap",
    "Bitcoin price",
    "Uniswap team",
    "Research Bitcoin",
    "uniswap tokenomics",
    "Is UNI a good investment?",
]
# (share of requests completed, seconds since the previous action at least, action)
SCHEDULE = (
    (0.15, 0.0, "kill redis"),
    (0.30, 3.0, "start redis"),
    (0.45, 1.5, "kill postgres"),
    (0.50, 2.5, "start postgres"),
)


@dataclass
class Run:
    name: str
    codes: Counter[str] = field(default_factory=Counter)
    by_phase: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    events: list[str] = field(default_factory=list)
    charged: int = 0
    usage_rows: int = 0
    elapsed_s: float = 0.0

    @property
    def answered(self) -> int:
        return self.codes["answered"]


def settings_for(db_url: str, redis_url: str, data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url=db_url,  # type: ignore[call-arg]
        redis_url=redis_url,
        redis_prefix=f"fault{uuid.uuid4().hex[:6]}:",
        chainlens_data_dir=data_dir,
        llm_models=[],
        telegram_bot_token=None,
        discord_bot_token=None,
        log_level="ERROR",
        tier_limits={"pro": TierLimits(daily=10**6, minute=10**6)},
    )


async def create_database(admin_url: str, name: str) -> str:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return admin_url.replace("/postgres?", f"/{name}?")


async def make_callers(settings: Settings, n: int) -> tuple[list[dict[str, str]], list[int]]:
    """Request headers of `n` Pro callers (every other one by API key, the rest by session
    cookie) and their account ids."""
    headers, ids = [], []
    async with open_deps(settings) as deps:
        for i in range(n):
            identity = f"web:bench{i}@example.com"
            account = await account_for_identity(deps, identity)
            account = await set_base_tier(deps, account.id, "pro")
            if i % 2 == 0:
                key, _ = await create_api_key(deps, account, "fault bench")
                headers.append({"Authorization": f"Bearer {key}"})
            else:
                cookie = session_cookie_value(settings, identity)
                headers.append({"Cookie": f"{SESSION_COOKIE}={cookie}"})
            ids.append(account.id)
    return headers, ids


async def drive(
    run: Run,
    url: str,
    callers: list[dict[str, str]],
    total: int,
    redis: KillableRedis | None,
    pg: KillablePostgres | None,
) -> None:
    done = 0
    stage = "no fault yet" if pg is not None else "no faults"
    issued = iter(range(total))
    started = time.perf_counter()

    def phase() -> str:
        return stage

    async def client(headers: dict[str, str]) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as http:
            for i in issued:
                label = phase()
                t = time.perf_counter()
                try:
                    response = await http.post(
                        "/api/chat/query", json={"message": QUESTIONS[i % len(QUESTIONS)]}
                    )
                    status = response.status_code
                except httpx.HTTPError as exc:
                    status, response = 0, None
                    run.events.append(f"request {i}: {type(exc).__name__}")
                took = time.perf_counter() - t
                if status == 200 and response is not None and "## " in response.json()["response"]:
                    kind = "answered"
                    run.latency[label].append(took)
                else:
                    kind = str(status)
                run.codes[kind] += 1
                run.by_phase[label][kind] += 1
                done += 1
                if status == 503 and response is not None:
                    await asyncio.sleep(min(float(response.headers.get("retry-after", 1)), 1.0))

    async def controller() -> None:
        nonlocal stage
        if redis is None or pg is None:
            return
        last = time.perf_counter()
        for share, hold_s, action in SCHEDULE:
            while done < share * total or time.perf_counter() - last < hold_s:
                await asyncio.sleep(0.005)
            last = time.perf_counter()
            t = last - started
            run.events.append(f"{t:6.2f}s after {done} requests: {action}")
            if action == "kill redis":
                stage = "redis down"
                redis.kill()
            elif action == "start redis":
                stage = "redis restarting"
                await asyncio.to_thread(redis.start)
                stage = "redis back"
            elif action == "kill postgres":
                stage = "postgres down"
                await asyncio.to_thread(pg.kill)
            else:
                stage = "postgres restarting"
                await asyncio.to_thread(pg.restart)
                stage = "postgres back"

    await asyncio.gather(controller(), *(client(h) for h in callers))
    run.elapsed_s = time.perf_counter() - started


async def count(run: Run, settings: Settings, account_ids: list[int]) -> None:
    async with open_deps(settings, migrate=False) as deps:
        run.usage_rows = int(
            await deps.db.fetchval("SELECT count(*) FROM usage_logs WHERE status = 'ok'")
        )
        for account_id in account_ids:
            from billing.accounts import get_account

            status = await quota_status(deps, await get_account(deps, account_id))
            run.charged += status.limit - status.remaining


async def one_run(
    name: str,
    admin_url: str,
    redis: KillableRedis,
    pg: KillablePostgres | None,
    data_dir: Path,
    total: int,
    concurrency: int,
) -> Run:
    db_url = await create_database(admin_url, f"fault_{name}_{uuid.uuid4().hex[:6]}")
    settings = settings_for(db_url, redis.url, data_dir)
    callers, ids = await make_callers(settings, concurrency)
    sources = FakeSources()
    server = LiveServer(settings, transport=sources.transport(), configure=fast_http).start()
    run = Run(name)
    try:
        await drive(run, server.url, callers, total, redis if pg else None, pg)
    finally:
        # Stopping the server waits for usage records kept through the outage (they are
        # written as soon as PostgreSQL is back; shutdown waits up to 5 s for the rest).
        await asyncio.to_thread(server.stop)
    await count(run, settings, ids)
    return run


def pct(values: list[float], q: float) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"{values[min(len(values) - 1, int(len(values) * q))] * 1000:.0f}"


def report(runs: list[Run]) -> None:
    print(f"\n{'':28}" + "".join(f"{r.name:>16}" for r in runs))
    for label, get in (
        ("requests", lambda r: sum(r.codes.values())),
        ("answered (200)", lambda r: r.answered),
        ("503 (Retry-After)", lambda r: r.codes["503"]),
        ("500", lambda r: r.codes["500"]),
        (
            "other",
            lambda r: sum(v for k, v in r.codes.items() if k not in ("answered", "503", "500")),
        ),
        ("charged (quota used)", lambda r: r.charged),
        ("usage rows", lambda r: r.usage_rows),
        ("wall time s", lambda r: f"{r.elapsed_s:.1f}"),
    ):
        print(f"{label:<28}" + "".join(f"{get(r)!s:>16}" for r in runs))
    for run in runs:
        print(f"\n{run.name}: per phase (answered / 503 / 500, answer latency p50 / p99 ms)")
        for label, codes in run.by_phase.items():
            lat = run.latency[label]
            print(
                f"  {label:<26} {codes['answered']:>4} / {codes['503']:>3} / {codes['500']:>3}"
                f"   p50 {pct(lat, 0.5):>5}  p99 {pct(lat, 0.99):>5}"
                f"   median {statistics.median(lat) * 1000 if lat else 0:.0f}"
            )
        for event in run.events:
            print(f"  {event}")
        exact = run.charged == run.answered == run.usage_rows
        print(
            f"  charged = answered = usage rows: {'yes' if exact else 'NO'} "
            f"({run.charged} / {run.answered} / {run.usage_rows})"
        )


async def main(total: int, concurrency: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="chainlens-fault-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # pgserver runs PostgreSQL as its own user when we are root
        redis = KillableRedis(root / "redis")
        redis.start()
        pg = KillablePostgres(root / "pg")
        try:
            print(
                f"{total} chat requests at concurrency {concurrency}; redis-server pid "
                f"{redis.pid}, PostgreSQL pid {pg.pid}"
            )
            baseline = await one_run(
                "no faults", pg.url, redis, None, root / "data", total, concurrency
            )
            faults = await one_run("faults", pg.url, redis, pg, root / "data", total, concurrency)
            report([baseline, faults])
        finally:
            redis.close()
            pg.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency))
