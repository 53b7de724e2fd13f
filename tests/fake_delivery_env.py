"""Wiring for delivery tests and benches: the three strict fakes running, settings that point
at them, Deps whose HTTP reaches them (and the fake data sources), workers run to idle."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import SecretStr

from billing.accounts import account_for_identity, set_base_tier
from chainlens.deps import Deps, make_http_client
from reports.subscriptions import subscribe
from tests.fake_delivery_discord import TOKEN as DISCORD_TOKEN
from tests.fake_delivery_discord import FakeDiscord
from tests.fake_delivery_sendgrid import API_KEY as SENDGRID_KEY
from tests.fake_delivery_sendgrid import FakeSendGridBatch
from tests.fake_delivery_server import serving
from tests.fake_delivery_sources import LoopbackOrFake, ReportSources
from tests.fake_delivery_telegram import TOKEN as TELEGRAM_TOKEN
from tests.fake_delivery_telegram import FakeTelegramDelivery
from tests.tools_fakes import fast_http

NEVER = "0 0 1 1 *"  # cron that does not fire during a test run


@dataclass
class Fakes:
    telegram: FakeTelegramDelivery
    discord: FakeDiscord
    sendgrid: FakeSendGridBatch
    telegram_url: str
    discord_url: str
    sendgrid_url: str

    def settings_update(self) -> dict[str, Any]:
        return {
            "telegram_bot_token": SecretStr(TELEGRAM_TOKEN),
            "telegram_api_base": self.telegram_url + "/bot",
            "discord_bot_token": SecretStr(DISCORD_TOKEN),
            "discord_api_base": self.discord_url + "/api/v10",
            "sendgrid_api_key": SecretStr(SENDGRID_KEY),
            "sendgrid_api_base": self.sendgrid_url,
            "report_cron": NEVER,
            "cache_warm_cron": NEVER,
            "alert_cron": NEVER,
            "alert_slow_cron": NEVER,
        }

    def env(self) -> dict[str, str]:
        """The same as environment variables, for a worker subprocess."""
        return {
            "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
            "TELEGRAM_API_BASE": self.telegram_url + "/bot",
            "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
            "DISCORD_API_BASE": self.discord_url + "/api/v10",
            "SENDGRID_API_KEY": SENDGRID_KEY,
            "SENDGRID_API_BASE": self.sendgrid_url,
            "REPORT_CRON": NEVER,
            "CACHE_WARM_CRON": NEVER,
            "ALERT_CRON": NEVER,
            "ALERT_SLOW_CRON": NEVER,
        }


@contextlib.contextmanager
def running_fakes(
    telegram: FakeTelegramDelivery | None = None,
    discord: FakeDiscord | None = None,
    sendgrid: FakeSendGridBatch | None = None,
) -> Iterator[Fakes]:
    telegram = telegram or FakeTelegramDelivery()
    discord = discord or FakeDiscord()
    sendgrid = sendgrid or FakeSendGridBatch()
    with (
        serving(telegram.app()) as t_url,
        serving(discord.app()) as d_url,
        serving(sendgrid.app()) as s_url,
    ):
        yield Fakes(telegram, discord, sendgrid, t_url, d_url, s_url)


@contextlib.asynccontextmanager
async def delivery_deps(
    base: Deps, fakes: Fakes, sources: ReportSources, **overrides: Any
) -> AsyncIterator[Deps]:
    """Deps pointing at the fakes, with the job queue open."""
    from reports.queue import open_queue

    settings = base.settings.model_copy(
        update={
            **fakes.settings_update(),
            "send_timeout_s": 1.0,
            "worker_heartbeat_s": 0.5,
            **overrides,
        }
    )
    client = make_http_client(settings, transport=LoopbackOrFake(sources.transport()))
    deps = fast_http(dataclasses.replace(base, settings=settings, http=client))
    try:
        async with open_queue(deps, max_size=12):
            yield deps
    finally:
        await client.aclose()


async def add_subscriber(
    deps: Deps, channel: str, destination: str, *, tier: str = "free", confirmed: bool = True
) -> int:
    identity = {
        "telegram": f"telegram:{destination.lstrip('-')}",
        "discord": f"discord:{destination}",
        "email": f"web:{destination}",
    }[channel]
    account = await account_for_identity(deps, identity)
    if tier != "free":
        await set_base_tier(deps, account.id, tier)  # type: ignore[arg-type]
    sub, _ = await subscribe(
        deps,
        account_id=account.id,
        channel=channel,  # type: ignore[arg-type]
        destination=destination,
        confirmed=confirmed,
    )
    return sub.id


async def add_many(deps: Deps, rows: list[tuple[str, str, str]]) -> None:
    """Bulk subscribers (channel, destination, tier) in a few statements (benches)."""
    async with deps.db.acquire() as conn, conn.transaction():
        for tier in ("free", "pro", "enterprise"):
            dests = [(c, d) for c, d, t in rows if t == tier]
            if not dests:
                continue
            ids = await conn.fetch(
                "INSERT INTO users (tier, base_tier) SELECT $1, $1 FROM generate_series(1, $2) "
                "RETURNING id",
                tier,
                len(dests),
            )
            await conn.executemany(
                "INSERT INTO report_subscribers (user_id, channel, destination, confirmed_at) "
                "VALUES ($1, $2, $3, now())",
                [(r["id"], c, d) for r, (c, d) in zip(ids, dests, strict=True)],
            )


async def open_work(deps: Deps, ref: str) -> int:
    """Ledger rows not final plus queue jobs not finished."""
    rows = await deps.db.fetchval(
        "SELECT count(*) FROM deliveries WHERE ref = $1 AND state IN ('pending', 'sending')", ref
    )
    jobs = await deps.db.fetchval(
        "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
    )
    return int(rows) + int(jobs)


async def drain(deps: Deps, ref: str, *, timeout_s: float = 60.0, concurrency: int = 10) -> None:
    """Run in-process workers to idle until the report's deliveries and jobs are done."""
    from reports.queue import run_worker

    try:
        async with asyncio.timeout(timeout_s):
            while True:
                await run_worker(
                    deps, wait=False, install_signal_handlers=False, concurrency=concurrency
                )
                if await open_work(deps, ref) == 0:
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        rows = await deps.db.fetch(
            "SELECT channel, state, error, not_before, attempts FROM deliveries "
            "WHERE ref = $1 AND state IN ('pending', 'sending')",
            ref,
        )
        jobs = await deps.db.fetch(
            "SELECT id, task_name, status, queue_name, attempts, scheduled_at "
            "FROM procrastinate_jobs WHERE status IN ('todo', 'doing', 'failed')"
        )
        raise AssertionError(
            f"not drained in {timeout_s} s: rows {[dict(r) for r in rows]}, "
            f"jobs {[dict(j) for j in jobs]}"
        ) from None


def day_ref(day: date) -> str:
    return day.isoformat()
