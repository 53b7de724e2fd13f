"""Delivering the report: every subscriber once, through real procrastinate workers, the
shared limiter and the strict fakes of Telegram, Discord and SendGrid."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from chainlens.deps import Deps
from reports.build import build_report
from reports.jobs import defer_broadcast
from reports.ledger import state_counts
from reports.store import save_report
from reports.subscriptions import get_subscription
from tests.fake_delivery_env import Fakes, add_subscriber, delivery_deps, drain, running_fakes
from tests.fake_delivery_sources import ReportSources

DAY = date(2026, 12, 1)
REF = DAY.isoformat()


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with running_fakes() as running:
        yield running


@pytest.fixture
async def ddeps(deps: Deps, fakes: Fakes) -> AsyncIterator[Deps]:
    async with delivery_deps(deps, fakes, ReportSources()) as opened:
        yield opened


async def built(deps: Deps, day: date = DAY) -> None:
    await deps.db.execute(
        "INSERT INTO projects (id, symbol, name) VALUES ('uniswap', 'uni', "
        "'Uniswap') ON CONFLICT DO NOTHING"
    )
    await deps.db.execute(
        "INSERT INTO project_usage VALUES ('uniswap', $1, 4) ON CONFLICT DO NOTHING", day
    )
    content, chart = await build_report(deps, day)
    await save_report(deps, content, chart)


async def test_everyone_once_with_429s_and_within_the_limits(ddeps: Deps, fakes: Fakes) -> None:
    await built(ddeps)
    private = [str(1000 + i) for i in range(24)]
    groups = [str(-100200 - i) for i in range(8)]
    channels = [str(900000 + i) for i in range(6)]
    emails = [f"reader{i}@example.com" for i in range(5)]
    for i, chat in enumerate(private + groups):
        await add_subscriber(ddeps, "telegram", chat, tier="pro" if i % 3 == 0 else "free")
    for channel in channels:
        await add_subscriber(ddeps, "discord", channel, tier="pro")
    for email in emails:
        await add_subscriber(ddeps, "email", email)
    await add_subscriber(ddeps, "email", "unconfirmed@example.com", confirmed=False)
    fakes.telegram.cue(private[1], "429")
    fakes.telegram.cue(groups[0], "429")
    fakes.telegram.cue(private[2], "error500")
    fakes.discord.cue(channels[0], "429")
    fakes.sendgrid.cue = "429"

    assert await defer_broadcast(DAY)
    assert not await defer_broadcast(DAY)  # already queued: one broadcast
    await drain(ddeps, REF)

    for chat in private + groups:
        kinds = [a.method for a in fakes.telegram.to(chat)]
        assert kinds == ["sendPhoto", "sendMessage"], (chat, kinds)
    for channel in channels:
        posted = fakes.discord.to(channel)
        assert len(posted) == 1
        image = posted[0].payload["embeds"][0]["image"]["url"]
        assert (
            image == "attachment://chart.png"
            if posted[0].files
            else image.startswith("https://cdn.discordapp.com/attachments/")
        )
    # the chart is uploaded a few times at most, then reused by reference
    assert fakes.telegram.uploads < len(private + groups)
    for email in emails:
        mails = fakes.sendgrid.to(email)
        assert len(mails) == 1
        assert mails[0].headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mails[0].headers["List-Unsubscribe"].startswith("<http")
        assert "/reports/unsubscribe?token=" in mails[0].html  # substituted per recipient
    assert fakes.sendgrid.to("unconfirmed@example.com") == []
    assert fakes.sendgrid.requests == 1  # one batch for the five (after the 429)
    # the strict fake never had to refuse for rate: only the cued answers were refusals
    assert sorted(code for _, code, _ in fakes.telegram.refused) == [429, 429, 500]
    assert fakes.telegram.max_in_window(1.0) <= 30
    assert all(fakes.telegram.max_in_window(60.0, g) <= 20 for g in groups)
    assert [code for _, code, _ in fakes.discord.refused] == [429]
    # editions follow the subscribing account's tier
    full_text = fakes.telegram.to(private[0])[1].text
    headline_text = fakes.telegram.to(private[1])[1].text
    assert "Risk flags" in full_text and "comes with Pro" not in full_text
    assert "comes with Pro" in headline_text and "Risk flags" not in headline_text
    counts = await state_counts(ddeps, "report", REF)
    assert counts == {"telegram": {"sent": 32}, "discord": {"sent": 6}, "email": {"sent": 5}}


async def test_blocked_bot_and_deleted_channel_deactivate_without_retrying(
    ddeps: Deps, fakes: Fakes
) -> None:
    await built(ddeps)
    await add_subscriber(ddeps, "telegram", "2001")
    await add_subscriber(ddeps, "telegram", "2002")
    await add_subscriber(ddeps, "discord", "3001")
    fakes.telegram.cue("2001", "blocked")
    fakes.discord.cue("3001", "unknown_channel")
    await defer_broadcast(DAY)
    await drain(ddeps, REF)

    blocked = await get_subscription(ddeps, channel="telegram", destination="2001")
    assert blocked is not None and not blocked.active
    assert blocked.deactivated_reason == "Forbidden: bot was blocked by the user"
    gone = await get_subscription(ddeps, channel="discord", destination="3001")
    assert gone is not None and not gone.active and gone.deactivated_reason == "Unknown Channel"
    assert len(fakes.telegram.to("2002")) == 2
    # `report send` again: nobody is repeated and the blocked chat is not tried again
    from reports.deliver import broadcast_report

    await broadcast_report(ddeps, DAY)
    await drain(ddeps, REF)
    assert [c for c, _, _ in fakes.telegram.refused] == ["2001"]
    assert len(fakes.telegram.to("2002")) == 2 and fakes.discord.posted == []
    counts = await state_counts(ddeps, "report", REF)
    assert counts == {"telegram": {"failed": 1, "sent": 1}, "discord": {"failed": 1}}


async def test_a_group_upgraded_to_a_supergroup_is_followed(ddeps: Deps, fakes: Fakes) -> None:
    from reports.deliver import broadcast_report

    await built(ddeps)
    await add_subscriber(ddeps, "telegram", "-4242", tier="pro")
    fakes.telegram.cue("-4242", "migrated:-1004242")
    await defer_broadcast(DAY)
    await drain(ddeps, REF)
    old = await get_subscription(ddeps, channel="telegram", destination="-4242")
    new = await get_subscription(ddeps, channel="telegram", destination="-1004242")
    assert old is not None and not old.active and "supergroup" in str(old.deactivated_reason)
    assert new is not None and new.receiving and new.account_id == old.account_id
    await broadcast_report(ddeps, DAY)  # `report send` again reaches the new id, once
    await drain(ddeps, REF)
    assert [a.method for a in fakes.telegram.to("-1004242")] == ["sendPhoto", "sendMessage"]
    assert "Risk flags" in fakes.telegram.to("-1004242")[1].text  # still the Pro edition


async def test_a_send_that_timed_out_after_arriving_is_not_repeated(
    ddeps: Deps, fakes: Fakes
) -> None:
    fakes.telegram.hang_s = 3.0  # longer than SEND_TIMEOUT_S (1 s)
    await built(ddeps)
    await add_subscriber(ddeps, "telegram", "4001")
    await add_subscriber(ddeps, "telegram", "4002")
    fakes.telegram.cue("4001", "timeout")
    await defer_broadcast(DAY)
    await drain(ddeps, REF)
    from reports.deliver import broadcast_report

    await broadcast_report(ddeps, DAY)  # a second `report send`
    await drain(ddeps, REF)
    assert [a.method for a in fakes.telegram.to("4001")] == ["sendPhoto"]  # arrived once, then
    assert len(fakes.telegram.to("4002")) == 2  # never resent
    row = await ddeps.db.fetchrow("SELECT state, error FROM deliveries WHERE destination = '4001'")
    assert row["state"] == "unknown" and "ReadTimeout" in row["error"]
    sub = await get_subscription(ddeps, channel="telegram", destination="4001")
    assert sub is not None and sub.active  # unknown is not a reason to unsubscribe


async def test_rebuild_after_delivery_started_sends_nobody_again(ddeps: Deps, fakes: Fakes) -> None:
    await built(ddeps)
    await add_subscriber(ddeps, "telegram", "5001")
    await defer_broadcast(DAY)
    await drain(ddeps, REF)
    await built(ddeps)  # rebuilt the same day
    await defer_broadcast(DAY)
    await drain(ddeps, REF)
    assert len(fakes.telegram.to("5001")) == 2
    assert await ddeps.db.fetchval("SELECT builds FROM daily_reports") == 2


async def test_two_workers_at_the_same_minute_build_once_and_send_once(
    deps: Deps, fakes: Fakes
) -> None:
    from reports.queue import run_worker

    at = datetime.now(UTC) + timedelta(seconds=3)
    cron = f"{at.minute} {at.hour} * * * {at.second}"  # croniter: seconds come last
    today = at.date()
    async with delivery_deps(deps, fakes, ReportSources(), report_cron=cron) as ddeps:
        await ddeps.db.execute(
            "INSERT INTO projects (id, symbol, name) VALUES ('uniswap', 'uni', 'Uniswap')"
        )
        await ddeps.db.execute("INSERT INTO project_usage VALUES ('uniswap', $1, 4)", today)
        for chat in ("6001", "6002", "-6003"):
            await add_subscriber(ddeps, "telegram", chat)
        workers = [
            asyncio.create_task(
                run_worker(ddeps, install_signal_handlers=False, name=f"w{i}", concurrency=4)
            )
            for i in range(2)
        ]
        try:
            async with asyncio.timeout(40):
                while len(fakes.telegram.arrived) < 6 or await ddeps.db.fetchval(
                    "SELECT count(*) FROM deliveries WHERE state <> 'sent'"
                ):
                    await asyncio.sleep(0.2)
            await asyncio.sleep(1.5)  # room for a duplicate to show up, if there were one
        finally:
            for task in workers:
                task.cancel()
            for task in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        assert (
            await ddeps.db.fetchval(
                "SELECT builds FROM daily_reports WHERE report_date = $1", today
            )
            == 1
        )
        assert (
            await ddeps.db.fetchval(
                "SELECT count(*) FROM procrastinate_periodic_defers "
                "WHERE task_name = 'reports.build_daily_report'"
            )
            == 1
        )
        for chat in ("6001", "6002", "-6003"):
            assert len(fakes.telegram.to(chat)) == 2


def worker_env(deps: Deps, fakes: Fakes, **extra: str) -> dict[str, str]:
    import json
    import os

    from tests.conftest import REPO_ROOT

    closed = "http://127.0.0.1:9"  # nothing listens: a worker here never reaches a data API
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_"))}
    env.update(fakes.env())
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "INFO",
            "DATABASE_URL": str(deps.settings.database_url),
            "REDIS_URL": str(deps.settings.redis_url),
            "REDIS_PREFIX": deps.settings.redis_prefix,
            "SEND_TIMEOUT_S": "1",
            "WORKER_HEARTBEAT_S": "0.5",
            "WORKER_CONCURRENCY": "2",
            "SEND_RATES": json.dumps(json.loads(extra.pop("SEND_RATES", "{}"))),
            "COINGECKO_BASE_URL": closed,
            "DEFILLAMA_BASE_URL": closed,
            "GOPLUS_BASE_URL": closed,
            "GITHUB_API_URL": closed,
            "FEAR_GREED_URL": closed,
            "NEWS_FEEDS": closed + "/rss",
            "LLM_MODELS": "",
        }
    )
    env.update(extra)
    return env


async def start_worker(env: dict[str, str], cwd: str, *args: str) -> asyncio.subprocess.Process:
    import sys

    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chainlens.cli",
        "worker",
        "--queues",
        "telegram,reports",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.slow
async def test_worker_killed_mid_broadcast_restarts_and_repeats_nobody(
    deps: Deps, tmp_path: object
) -> None:
    import signal

    from reports.deliver import broadcast_report

    telegram_fake = __import__("tests.fake_delivery_telegram", fromlist=["x"]).FakeTelegramDelivery(
        answer_delay_s=0.05, hang_s=4.0
    )
    with running_fakes(telegram=telegram_fake) as fakes:
        async with delivery_deps(deps, fakes, ReportSources()) as ddeps:
            await built(ddeps)
            chats = [str(7000 + i) for i in range(40)]
            for chat in chats:
                await add_subscriber(ddeps, "telegram", chat)
            fakes.telegram.cue(chats[5], "timeout")  # arrives, but the answer never comes
            await broadcast_report(ddeps, DAY)
            env = worker_env(ddeps, fakes, SEND_RATES='{"telegram": [10, 1]}')

            first = await start_worker(env, str(tmp_path))
            async with asyncio.timeout(60):
                while len(fakes.telegram.arrived) < 30:
                    assert first.returncode is None, "worker exited early"
                    await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)  # mid-broadcast, no chance to clean up
            await first.wait()
            arrived_at_kill = len(fakes.telegram.arrived)
            assert arrived_at_kill < 80  # really mid-way
            await asyncio.sleep(2.0)  # the dead worker's heartbeat goes stale (3 x 0.5 s)

            second = await start_worker(env, str(tmp_path), "--until-idle")
            try:
                async with asyncio.timeout(90):
                    while await ddeps.db.fetchval(
                        "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending')"
                    ):
                        await asyncio.sleep(0.2)
                    await second.wait()
            finally:
                if second.returncode is None:
                    second.kill()
                    await second.wait()

            states = {
                r["destination"]: r["state"]
                for r in await ddeps.db.fetch("SELECT destination, state FROM deliveries")
            }
            for chat in chats:
                methods = [a.method for a in fakes.telegram.to(chat)]
                assert len(methods) == len(set(methods)), (chat, methods)  # nothing twice
                if states[chat] == "sent":
                    assert methods == ["sendPhoto", "sendMessage"], (chat, methods)
                else:
                    assert states[chat] == "unknown", (chat, states[chat])
            assert states[chats[5]] == "unknown"
            assert [a.method for a in fakes.telegram.to(chats[5])] == ["sendPhoto"]
            unknown = sum(1 for s in states.values() if s == "unknown")
            # only what was in flight when the worker died (plus the cued timeout) is unknown
            assert unknown <= 1 + 2 * 10, states
            assert sum(1 for s in states.values() if s == "sent") >= len(chats) - unknown
            assert len(fakes.telegram.arrived) > arrived_at_kill  # the restart sent the rest


async def test_status_command_and_metrics_show_the_ledger(ddeps: Deps, fakes: Fakes) -> None:
    import httpx
    from click.testing import CliRunner

    from web.app import create_app

    await built(ddeps)
    await add_subscriber(ddeps, "telegram", "8001")
    await add_subscriber(ddeps, "telegram", "8002")
    fakes.telegram.cue("8002", "blocked")
    await defer_broadcast(DAY)
    await drain(ddeps, REF)
    app = create_app(ddeps.settings, deps=ddeps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as web:
        text = (await web.get("/metrics")).text
    assert (
        'chainlens_report_deliveries{channel="telegram",report_date="2026-12-01",state="sent"} 1.0'
    ) in text
    assert (
        'chainlens_report_deliveries{channel="telegram",report_date="2026-12-01",'
        'state="failed"} 1.0'
    ) in text
    assert 'chainlens_send_rate_per_second{channel="telegram"} 0.0166' in text

    from chainlens.cli import main

    env = {
        "DATABASE_URL": str(ddeps.settings.database_url),
        "REDIS_URL": str(ddeps.settings.redis_url),
        "REDIS_PREFIX": ddeps.settings.redis_prefix,
    }
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["report", "status", "--date", "2026-12-01"], env=env
    )
    assert result.exit_code == 0, result.output
    telegram_line = next(line for line in result.output.splitlines() if line.startswith("telegram"))
    assert telegram_line.split() == ["telegram", "0", "0", "1", "1", "0"]


async def test_unsubscribed_after_the_fan_out_receives_nothing(ddeps: Deps, fakes: Fakes) -> None:
    from reports.deliver import broadcast_report
    from reports.subscriptions import unsubscribe

    await built(ddeps)
    await add_subscriber(ddeps, "telegram", "9001")
    await add_subscriber(ddeps, "telegram", "9002")
    await broadcast_report(ddeps, DAY)  # rows and jobs exist; nothing sent yet
    assert await unsubscribe(ddeps, channel="telegram", destination="9001")
    await drain(ddeps, REF)
    assert fakes.telegram.to("9001") == [] and len(fakes.telegram.to("9002")) == 2
    row = await ddeps.db.fetchrow("SELECT state, error FROM deliveries WHERE destination = '9001'")
    assert (row["state"], row["error"]) == ("failed", "unsubscribed before delivery")


async def test_serve_runs_a_worker_in_process_unless_turned_off(ddeps: Deps, fakes: Fakes) -> None:
    from chainlens.serve import channel_plan, run_job_worker

    assert "job worker: on (in-process)" in channel_plan(ddeps.settings)
    off = ddeps.settings.model_copy(update={"serve_worker": False})
    assert any("SERVE_WORKER=false" in line for line in channel_plan(off))
    await built(ddeps)
    await add_subscriber(ddeps, "telegram", "9101")
    worker = asyncio.create_task(run_job_worker(ddeps))  # what `serve` starts
    try:
        await defer_broadcast(DAY)
        async with asyncio.timeout(30):
            while len(fakes.telegram.to("9101")) < 2:
                await asyncio.sleep(0.1)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


def test_every_scheduled_job_is_registered_with_the_queue(deps: Deps) -> None:
    """Nothing scheduled lives in a bare asyncio loop: each recurring job is a periodic task."""
    from reports.queue import app, register_periodic

    register_periodic(deps)
    registered = {name for name, _periodic_id in app.periodic_registry.periodic_tasks}
    assert {
        "reports.build_daily_report",
        "tools.warm_cache",
        "tools.refresh_coin_index",
        "tools.refresh_quotes",
        "billing.purge_anonymous",
        "billing.expire_stars",
    } <= registered
