"""Broadcast of one daily report to 10,000 mixed subscribers against the strict local fakes of
Telegram, Discord and SendGrid, with the real send limits configured.

Usage: DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/broadcast_bench.py
         [--subscribers 10000] [--scale 10] [--workers 2] [--concurrency 20]

The limits are the real ones (Telegram 30/s overall, 1/s per private chat, 20/min per group;
Discord 50/s overall, 5 per 5 s per channel; e-mail 10 requests/s) with every window divided
by `--scale` (SEND_RATES), so the run takes seconds instead of minutes; the fakes enforce the
same scaled limits and answer 429 beyond them. Printed: wall time per platform against the
ceiling those limits allow (ratio = ceiling / measured: goal >= 0.9, and the fakes' busiest
window never above the limit), duplicates and losses counted at the fakes (goal 0 and 0).

Fakes run in their own process, workers are `chainlens worker` subprocesses (as deployed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _scratch import REDIS_URL, scratch_space

DAY = date(2026, 12, 1)
OUTSIDE = "/tmp"  # noqa: S108 - the workers' working directory, outside the checkout
REAL = {
    "telegram": (30, 1.0),
    "telegram_private": (1, 1.0),
    "telegram_group": (20, 60.0),
    "discord": (50, 1.0),
    "discord_channel": (5, 5.0),
    "email": (10, 1.0),
}


def scaled(scale: float) -> dict[str, tuple[int, float]]:
    return {name: (limit, window / scale) for name, (limit, window) in REAL.items()}


# --- the fakes, in their own process ----------------------------------------------------------


def _fake_process(scale: float, port_queue: Any) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from tests.fake_delivery_discord import FakeDiscord
    from tests.fake_delivery_sendgrid import FakeSendGridBatch
    from tests.fake_delivery_telegram import FakeTelegramDelivery
    from tests.fake_telegram import _free_port

    rates = scaled(scale)
    telegram = FakeTelegramDelivery(
        global_limit=rates["telegram"], group_limit=rates["telegram_group"]
    )
    discord = FakeDiscord(channel_limit=rates["discord_channel"], global_limit=rates["discord"])
    sendgrid = FakeSendGridBatch()

    def dup_loss(keys: list[str]) -> dict[str, int]:
        seen: dict[str, int] = {}
        for key in keys:
            seen[key] = seen.get(key, 0) + 1
        return {"destinations": len(seen), "duplicates": sum(n - 1 for n in seen.values())}

    async def stats(request: Request) -> JSONResponse:
        t_times = [a.at for a in telegram.arrived]
        d_times = [p.at for p in discord.posted]
        m_times = [m.at for m in sendgrid.mails]
        groups = {a.chat_id for a in telegram.arrived if int(a.chat_id) < 0}
        return JSONResponse(
            {
                "telegram": {
                    **dup_loss([f"{a.chat_id}:{a.method}" for a in telegram.arrived]),
                    "messages": len(t_times),
                    "first": min(t_times, default=0),
                    "last": max(t_times, default=0),
                    "refused": len(telegram.refused),
                    "max_in_window": telegram.max_in_window(rates["telegram"][1]),
                    "max_group_window": max(
                        (telegram.max_in_window(rates["telegram_group"][1], g) for g in groups),
                        default=0,
                    ),
                },
                "discord": {
                    **dup_loss([p.channel_id for p in discord.posted]),
                    "messages": len(d_times),
                    "first": min(d_times, default=0),
                    "last": max(d_times, default=0),
                    "refused": len(discord.refused),
                },
                "email": {
                    **dup_loss([m.to for m in sendgrid.mails]),
                    "messages": len(m_times),
                    "requests": sendgrid.requests,
                    "first": min(m_times, default=0),
                    "last": max(m_times, default=0),
                    "refused": len(sendgrid.refused),
                },
                "now": time.monotonic(),
            }
        )

    app = Starlette(
        routes=[
            Route("/_stats", stats),
            Mount("/telegram", app=telegram.app()),
            Mount("/discord", app=discord.app()),
            Mount("/sendgrid", app=sendgrid.app()),
        ]
    )
    port = _free_port()
    port_queue.put(port)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", backlog=4096)


# --- the run ----------------------------------------------------------------------------------


def sample_content() -> tuple[Any, bytes]:
    from chainlens.charts import render_change_bars
    from reports.content import MarketOverview, ProjectLine, Quote, ReportContent

    now = datetime.now(UTC)
    projects = [
        ProjectLine(
            id=f"coin-{i}",
            name=f"Coin {i}",
            symbol=f"C{i}",
            query_count=50 - i,
            price_usd=1.5 * (i + 1),
            change_24h_pct=(-1) ** i * (i + 0.5),
            sentiment_score=40 + i,
            sentiment_label="Neutral",
            insight="News sentiment is bullish: 4 items in 24 h",
            risk_flags=["mintable"] if i % 4 == 0 else [],
            as_of=now,
            url=f"https://www.coingecko.com/en/coins/coin-{i}",
        )
        for i in range(10)
    ]
    content = ReportContent(
        report_date=DAY,
        generated_at=now,
        market=MarketOverview(
            btc=Quote(id="bitcoin", symbol="BTC", price_usd=97000.0, change_24h_pct=1.2, as_of=now),
            eth=Quote(
                id="ethereum", symbol="ETH", price_usd=3400.0, change_24h_pct=-0.4, as_of=now
            ),
            fear_greed=61,
            fear_greed_label="Greed",
            fear_greed_as_of=now,
        ),
        projects=projects,
        movers=["coin-9", "coin-8", "coin-7"],
        intro="Bitcoin is +1.2% over 24 hours.",
        intro_by="deterministic",
        has_chart=True,
    )
    chart = render_change_bars(
        "24 h change", [(p.symbol, p.change_24h_pct or 0.0) for p in projects]
    )
    return content, chart


async def main(n: int, scale: float, workers: int, concurrency: int) -> None:
    import httpx
    from pydantic import SecretStr

    from chainlens.deps import open_deps
    from chainlens.settings import Settings
    from reports.deliver import broadcast_report
    from reports.queue import open_queue
    from reports.store import save_report
    from tests.fake_delivery_discord import TOKEN as DISCORD_TOKEN
    from tests.fake_delivery_env import NEVER, add_many
    from tests.fake_delivery_sendgrid import API_KEY as SENDGRID_KEY
    from tests.fake_delivery_telegram import TOKEN as TELEGRAM_TOKEN

    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    fake = ctx.Process(target=_fake_process, args=(scale, ports), daemon=True)
    fake.start()
    base = f"http://127.0.0.1:{ports.get(timeout=30)}"
    rates = scaled(scale)
    send_rates = {k: [v[0], v[1]] for k, v in rates.items()}
    try:
        async with scratch_space() as (db_url, prefix):
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None,
                environment="test",
                database_url=db_url,
                redis_url=REDIS_URL,
                redis_prefix=prefix,
                llm_models=[],
                send_rates=send_rates,
                telegram_bot_token=SecretStr(TELEGRAM_TOKEN),
                telegram_api_base=f"{base}/telegram/bot",
                discord_bot_token=SecretStr(DISCORD_TOKEN),
                discord_api_base=f"{base}/discord/api/v10",
                sendgrid_api_key=SecretStr(SENDGRID_KEY),
                sendgrid_api_base=f"{base}/sendgrid",
                report_cron=NEVER,
                cache_warm_cron=NEVER,
            )
            async with open_deps(settings) as deps, open_queue(deps):
                tg_private, tg_groups = int(n * 0.5), int(n * 0.1)
                dc, em = int(n * 0.3), n - int(n * 0.5) - int(n * 0.1) - int(n * 0.3)
                tiers = ("free", "free", "pro", "enterprise")
                rows = (
                    [("telegram", str(10_000_000 + i), tiers[i % 4]) for i in range(tg_private)]
                    + [
                        ("telegram", str(-1_000_000_000 - i), tiers[i % 4])
                        for i in range(tg_groups)
                    ]
                    + [("discord", str(800_000_000_000 + i), tiers[i % 4]) for i in range(dc)]
                    + [("email", f"reader{i}@example.com", tiers[i % 4]) for i in range(em)]
                )
                await add_many(deps, rows)
                content, chart = sample_content()
                await save_report(deps, content, chart)

                env = {
                    **os.environ,
                    "PYTHONPATH": str(ROOT),
                    "ENVIRONMENT": "test",
                    "DATABASE_URL": db_url,
                    "REDIS_URL": REDIS_URL,
                    "REDIS_PREFIX": prefix,
                    "SEND_RATES": json.dumps(send_rates),
                    "LOG_LEVEL": "WARNING",
                    "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
                    "TELEGRAM_API_BASE": f"{base}/telegram/bot",
                    "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
                    "DISCORD_API_BASE": f"{base}/discord/api/v10",
                    "SENDGRID_API_KEY": SENDGRID_KEY,
                    "SENDGRID_API_BASE": f"{base}/sendgrid",
                    "REPORT_CRON": NEVER,
                    "CACHE_WARM_CRON": NEVER,
                    "LLM_MODELS": "",
                    "WORKER_CONCURRENCY": str(concurrency),
                    "DB_POOL_MAX": "30",
                }
                started = time.perf_counter()
                summary = await broadcast_report(deps, DAY)
                fanned = time.perf_counter() - started
                procs = [
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "chainlens.cli",
                        "worker",
                        "--queues",
                        "telegram,discord,email",
                        env=env,
                        cwd=OUTSIDE,
                    )
                    for _ in range(workers)
                ]
                while await deps.db.fetchval(
                    "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending')"
                ):
                    await asyncio.sleep(0.5)
                for proc in procs:
                    proc.terminate()  # graceful stop: nothing is left to do
                for proc in procs:
                    await proc.wait()
                total = time.perf_counter() - started
                states = dict(
                    await deps.db.fetch("SELECT state, count(*) FROM deliveries GROUP BY state")
                )
            async with httpx.AsyncClient() as client:
                stats = (await client.get(f"{base}/_stats")).json()
    finally:
        fake.terminate()
        fake.join(5)

    print(
        f"subscribers {n}: telegram {tg_private} private + {tg_groups} groups "
        f"(2 messages each: chart photo + text), discord {dc}, email {em}"
    )
    print(
        f"limits: real ones with windows / {scale:g} (SEND_RATES); fan-out "
        f"{summary.added} rows into {summary.jobs} jobs in {fanned:.2f} s; "
        f"{workers} worker processes x concurrency {concurrency}"
    )
    print(f"ledger: {states}")
    t_msgs = 2 * (tg_private + tg_groups)
    t_limit, t_window = rates["telegram"]
    d_limit, d_window = rates["discord"]
    e_limit, e_window = rates["email"]
    ceilings = {
        "telegram": (math.ceil(t_msgs / t_limit) - 1) * t_window,
        "discord": (math.ceil(dc / d_limit) - 1) * d_window,
        "email": (math.ceil(math.ceil(em / 1000) / e_limit) - 1) * e_window,
    }
    expected = {"telegram": t_msgs, "discord": dc, "email": em}
    for platform in ("telegram", "discord", "email"):
        s = stats[platform]
        span = s["last"] - s["first"]
        lost = expected[platform] - (s["messages"] - s["duplicates"])
        ratio = ceilings[platform] / span if span > 0 else float("nan")
        print(
            f"{platform:<9} {s['messages']:>6} messages in {span:7.2f} s; ceiling "
            f"{ceilings[platform]:7.2f} s; ratio {ratio:.2f}; duplicates {s['duplicates']}; "
            f"losses {lost}; refused by the fake {s['refused']}"
        )
    print(
        f"telegram busiest {t_window:g} s window: {stats['telegram']['max_in_window']} "
        f"(limit {t_limit}); busiest group window: {stats['telegram']['max_group_window']} "
        f"(limit {rates['telegram_group'][0]})"
    )
    print(f"e-mail: {stats['email']['requests']} SendGrid requests for {em} recipients")
    print(f"total wall time (fan-out to last ledger row): {total:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.subscribers, args.scale, args.workers, args.concurrency))
