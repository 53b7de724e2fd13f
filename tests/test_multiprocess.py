"""Many processes, one truth: two `chainlens serve` processes (the first with `--workers 2`) and
one `chainlens worker`, each a separate OS process started from the command line, on one
PostgreSQL and Redis (this run's own database and key prefix).

Shown over real HTTP between real processes:
a. 1,000 concurrent chat requests of one free identity spread over both app processes are
   granted exactly the free allowance, and PostgreSQL's ledger says the same;
b. an API key revoked through one app process is refused by the other within API_KEY_CACHE_S
   (the delay is measured and printed);
c. one signed Stripe event delivered to both is applied once;
d. one Telegram update delivered to both webhooks is answered once (a strict fake Bot API
   counts the sendMessage calls; only one process of `--workers 2` registers the webhook);
e. the daily report's periodic job (scheduled every 20 s here), with two job workers live at
   its tick (the worker process and the in-process worker of the `--workers 2` app), is
   deferred once and run once, and no build of any tick ran twice;
and `serve --workers 2` restarts a web process that was SIGKILLed and stops cleanly (every
child gone, exit 0) on SIGTERM.

The data APIs are the tests' fake sources served on loopback (tests/fake_sources_http.py); no
LLM is configured (the deterministic writer), so no process reaches the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from pydantic import SecretStr

from billing.accounts import account_for_identity, get_account
from chainlens.deps import Deps
from tests import telegram_updates as tu
from tests.conftest import REPO_ROOT
from tests.fake_bot_api import _free_port, running_fake_bot_api
from tests.fake_delivery_server import serving
from tests.fake_sources_http import SourcesOverHttp
from web.auth import SESSION_COOKIE, session_cookie_value

FREE_DAILY = 20
REQUESTS = 1000
API_KEY_CACHE_S = 2.0
SECRET_KEY = "multiprocess-test-secret-key-0123456789abcdef"
STRIPE_SECRET = "whsec_multiprocess_0123456789"
TELEGRAM_TOKEN = "123456:MULTIPROCESS-TOKEN"
TELEGRAM_SECRET = "multiprocess-webhook-secret"
WEBHOOK_URL = "https://bot.chainlens.example/api/telegram/webhook"
NEVER = "0 0 1 1 *"
# The report's schedule: every 20 s (cron seconds), so a tick comes soon after both job
# workers are up however long five interpreters take to start on a busy machine.
TICK_EVERY_S = 20
REPORT_CRON = f"* * * * * */{TICK_EVERY_S}"
HEARTBEAT_S = 10.0  # the default: shorter ones read a worker busy on a busy machine as dead
START_TIMEOUT_S = 120


@dataclass
class Proc:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _env(deps: Deps, tmp_path: Path, sources_url: str, bot_url: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(SourcesOverHttp.env(sources_url))
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "INFO",
            "DATABASE_URL": str(deps.settings.database_url),
            "REDIS_URL": str(deps.settings.redis_url),
            "REDIS_PREFIX": deps.keys.prefix,
            "CHAINLENS_DATA_DIR": str(tmp_path / "data"),
            "SECRET_KEY": SECRET_KEY,
            "LLM_MODELS": "",
            "HTTP_TIMEOUT_S": "5",
            "COINGECKO_RATE_PER_MIN": "100000",
            "GITHUB_RATE_PER_HOUR": "100000",
            "TIER_LIMITS": json.dumps({"free": {"daily": FREE_DAILY, "minute": 100_000}}),
            "FREE_IP_DAILY": "100000",
            "FREE_IP_MINUTE": "100000",
            "API_KEY_CACHE_S": str(API_KEY_CACHE_S),
            "STRIPE_SECRET_KEY": "sk_test_multiprocess",
            "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "STRIPE_PRICE_PRO": "price_pro",
            "STRIPE_PRICE_ENTERPRISE": "price_ent",
            "STRIPE_API_BASE": "http://127.0.0.1:9",
            "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
            "TELEGRAM_API_BASE": bot_url,
            "TELEGRAM_WEBHOOK_URL": WEBHOOK_URL,
            "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
            "REPORT_CRON": REPORT_CRON,
            "CACHE_WARM_CRON": NEVER,
            "ALERT_CRON": NEVER,
            "ALERT_SLOW_CRON": NEVER,
            "WORKER_HEARTBEAT_S": str(HEARTBEAT_S),
            "WORKER_CONCURRENCY": "4",
            "REPORT_TOP_N": "3",
        }
    )
    return env


@contextlib.asynccontextmanager
async def started(
    name: str, argv: list[str], env: dict[str, str], tmp_path: Path
) -> AsyncIterator[Proc]:
    log = tmp_path / f"{name}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chainlens.cli",
            *argv,
            env=env,
            cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    proc = Proc(name, process, log)
    try:
        yield proc
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _until(condition: Any, timeout_s: float, what: str, *procs: Proc) -> float:
    """Poll `condition` (sync or async) until true; the time it took."""
    started_at = time.monotonic()
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - started_at
        for proc in procs:
            assert proc.process.returncode is None, f"{proc.name} exited\n{proc.tail()}"
        if time.monotonic() - started_at > timeout_s:
            raise AssertionError(
                f"{what}: not within {timeout_s} s\n" + "\n".join(p.tail() for p in procs)
            )
        await asyncio.sleep(0.05)


async def _ready(client: httpx.AsyncClient) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return (await client.get("/ready")).status_code == 200
    return False


def _cookie(deps: Deps, identity: str) -> dict[str, str]:
    settings = deps.settings.model_copy(update={"secret_key": SecretStr(SECRET_KEY)})
    return {"Cookie": f"{SESSION_COOKIE}={session_cookie_value(settings, identity)}"}


def _stripe_signature(payload: bytes) -> str:
    t = int(time.time())
    mac = hmac.new(STRIPE_SECRET.encode(), f"{t}.".encode() + payload, hashlib.sha256)
    return f"t={t},v1={mac.hexdigest()}"


# Five interpreters start here; the whole test used about 40 s of CPU (measured with `time`,
# subprocesses included), so it takes well over 20 s on two idle cores and minutes on a busy
# machine (187 s at a load average of 13): hence the start-up allowance and the timeout.
@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_two_app_processes_and_a_worker_share_one_truth(
    deps: Deps, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures: dict[str, object] = {}
    port_a, port_b = _free_port(), _free_port()
    async with running_fake_bot_api() as (bot, bot_url):
        with serving(SourcesOverHttp().app()) as sources_url:
            env = _env(deps, tmp_path, sources_url, bot_url)
            async with (
                started(
                    "app-a", ["serve", "--port", str(port_a), "--workers", "2"], env, tmp_path
                ) as app_a,
                started(
                    "app-b",
                    ["serve", "--port", str(port_b)],
                    {**env, "SERVE_WORKER": "false"},
                    tmp_path,
                ) as app_b,
                started("worker", ["worker"], env, tmp_path) as worker,
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port_a}",
                    timeout=60,
                    limits=httpx.Limits(max_connections=500),
                ) as a,
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port_b}",
                    timeout=60,
                    limits=httpx.Limits(max_connections=500),
                ) as b,
            ):
                procs = (app_a, app_b, worker)
                began = time.monotonic()
                await _until(
                    lambda: "2 web processes serving" in app_a.text(),
                    START_TIMEOUT_S,
                    "app-a's two web processes",
                    *procs,
                )
                await _until(lambda: _ready(b), START_TIMEOUT_S, "app-b ready", *procs)

                async def two_job_workers() -> bool:
                    return await _job_workers_live(deps) == 2

                await _until(two_job_workers, START_TIMEOUT_S, "two job workers", *procs)
                both_live_at = time.time()
                figures["start_s"] = round(time.monotonic() - began, 1)
                assert f"web: on at http://127.0.0.1:{port_a} (2 web processes)" in app_a.text()
                assert await _ready(a)

                await _quota_is_exact(deps, a, b, figures)
                await _revoked_key_is_refused_elsewhere(deps, a, b, figures)
                await _stripe_event_applied_once(deps, a, b, figures)
                await _telegram_update_answered_once(bot, a, b, figures)
                await _crashed_web_process_restarts(app_a, a, figures, *procs)
                await _report_runs_once_per_tick(deps, both_live_at, figures, *procs)
                a_children = list(psutil.Process(app_a.process.pid).children(True))

            # leaving `started`: SIGTERM to each; app-a forwards it to its web processes
            assert app_a.process.returncode == 0, app_a.tail()
            assert app_b.process.returncode == 0, app_b.tail()
            _, alive = psutil.wait_procs(a_children, timeout=5)
            assert not alive
    with capsys.disabled():
        print(f"\nmultiprocess figures: {json.dumps(figures)}")  # noqa: T201 - shown with -s


async def _quota_is_exact(
    deps: Deps, a: httpx.AsyncClient, b: httpx.AsyncClient, figures: dict[str, object]
) -> None:
    identity = "web:quota-multiprocess@example.com"
    account = await account_for_identity(deps, identity)
    headers = _cookie(deps, identity)

    # One connection per request, all open at once: no keep-alive connection that a busy
    # server closes just as the client reuses it.
    burst = [
        httpx.AsyncClient(
            base_url=c.base_url,
            timeout=120,
            limits=httpx.Limits(max_connections=REQUESTS // 2, max_keepalive_connections=0),
        )
        for c in (a, b)
    ]

    async def ask(n: int) -> tuple[str, int]:
        reply = await burst[n % 2].post(
            "/api/chat/query", json={"message": "UNI price?"}, headers=headers
        )
        return ("a", "b")[n % 2], reply.status_code

    began = time.monotonic()
    try:
        results = await asyncio.gather(*(ask(n) for n in range(REQUESTS)))
    finally:
        for client in burst:
            await client.aclose()
    figures["burst_s"] = round(time.monotonic() - began, 2)
    statuses = Counter(status for _, status in results)
    granted = Counter(where for where, status in results if status == 200)
    figures["statuses"] = dict(statuses)
    figures["granted_by_process"] = dict(granted)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] == FREE_DAILY, statuses

    async def ledger() -> bool:
        day = await deps.db.fetchval(
            "SELECT max(count) FROM quota_counters WHERE bucket = $1 AND window_kind = 'day'",
            f"acct:{account.id}",
        )
        used = await deps.db.fetchval(
            "SELECT count(*) FROM usage_logs WHERE user_id = $1 AND status = 'ok'", account.id
        )
        figures["ledger_day_count"], figures["usage_logs_ok"] = day, used
        return bool(day == FREE_DAILY and used == FREE_DAILY)

    await _until(ledger, 10, "PostgreSQL's ledger")
    # and what either process says is left agrees
    for client in (a, b):
        quota = (await client.get("/api/chat/quota", headers=headers)).json()
        assert quota["remaining"] == 0 and quota["limit"] == FREE_DAILY, quota


async def _revoked_key_is_refused_elsewhere(
    deps: Deps, a: httpx.AsyncClient, b: httpx.AsyncClient, figures: dict[str, object]
) -> None:
    owner = _cookie(deps, "web:keys-multiprocess@example.com")
    created = await b.post("/api/keys", json={"name": "multiprocess"}, headers=owner)
    assert created.status_code == 201, created.text
    bearer = {"Authorization": f"Bearer {created.json()['key']}"}
    # app-b (one process) authenticates the key: from now on it keeps it API_KEY_CACHE_S
    assert (await b.get("/api/payment/subscription", headers=bearer)).status_code == 200
    cached_at = time.monotonic()
    revoked = await a.delete(f"/api/keys/{created.json()['id']}", headers=owner)
    assert revoked.status_code == 204, revoked.text
    revoked_at = time.monotonic()
    served_after_revoke = 0
    while (status := (await b.get("/api/payment/subscription", headers=bearer)).status_code) == 200:
        served_after_revoke += 1
        assert time.monotonic() - revoked_at < API_KEY_CACHE_S + 1.0, "still accepted"
        await asyncio.sleep(0.01)
    refused_at = time.monotonic()
    assert status == 401
    figures["revoke_refused_after_s"] = round(refused_at - revoked_at, 3)
    figures["revoke_cached_for_s"] = round(refused_at - cached_at, 3)
    figures["revoke_served_after"] = served_after_revoke
    assert refused_at - revoked_at <= API_KEY_CACHE_S + 0.25
    # and it stays refused everywhere
    for client in (a, a, b):
        assert (await client.get("/api/payment/subscription", headers=bearer)).status_code == 401


async def _stripe_event_applied_once(
    deps: Deps, a: httpx.AsyncClient, b: httpx.AsyncClient, figures: dict[str, object]
) -> None:
    account = await account_for_identity(deps, "web:stripe-multiprocess@example.com")
    now = int(time.time())
    event = {
        "id": "evt_multiprocess",
        "object": "event",
        "type": "customer.subscription.created",
        "created": now,
        "data": {
            "object": {
                "id": "sub_multiprocess",
                "object": "subscription",
                "customer": "cus_multiprocess",
                "status": "active",
                "metadata": {"account_id": str(account.id)},
                "items": {
                    "object": "list",
                    "data": [{"price": {"id": "price_pro"}, "current_period_end": now + 2592000}],
                },
            }
        },
    }
    payload = json.dumps(event).encode()
    headers = {"Stripe-Signature": _stripe_signature(payload), "Content-Type": "application/json"}
    replies = await asyncio.gather(
        *(c.post("/api/stripe/webhook", content=payload, headers=headers) for c in (a, b))
    )
    assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
    outcomes = sorted(r.json()["outcome"] for r in replies)
    figures["stripe_outcomes"] = outcomes
    assert outcomes.count("duplicate") == 1, outcomes
    assert await deps.db.fetchval("SELECT count(*) FROM stripe_events") == 1
    assert await deps.db.fetchval("SELECT count(*) FROM subscriptions") == 1
    assert (await get_account(deps, account.id)).tier == "pro"


async def _telegram_update_answered_once(
    bot: Any, a: httpx.AsyncClient, b: httpx.AsyncClient, figures: dict[str, object]
) -> None:
    chat = 777_001
    # app-a's first web process and app-b registered; app-a's second did not
    figures["setWebhook_calls"] = len(bot.sent("setWebhook"))
    assert len(bot.sent("setWebhook")) == 2
    assert bot.webhook["url"] == WEBHOOK_URL and bot.webhook["secret_token"] == TELEGRAM_SECRET
    update = tu.message("/help", chat_id=chat, user_id=chat, update_id=880_001)
    secret = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    wrong = await a.post(
        "/api/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
    )
    assert wrong.status_code == 403
    replies = await asyncio.gather(
        *(c.post("/api/telegram/webhook", json=update, headers=secret) for c in (a, b))
    )
    assert [r.status_code for r in replies] == [200, 200]
    assert sorted(bool(r.json().get("duplicate")) for r in replies) == [False, True]
    await _until(lambda: bool(bot.sent("sendMessage", chat)), 15, "the answer")
    await asyncio.sleep(1.0)  # a second answer, if there were one, would arrive by now
    figures["telegram_sendMessage"] = len(bot.sent("sendMessage", chat))
    assert len(bot.sent("sendMessage", chat)) == 1


async def _crashed_web_process_restarts(
    app_a: Proc, a: httpx.AsyncClient, figures: dict[str, object], *procs: Proc
) -> None:
    found = re.findall(r"web process 1 started \(pid (\d+)\)", app_a.text())
    victim = int(found[-1])
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    await _until(
        lambda: re.search(rf"web process 1 \(pid {victim}\) exited with -9", app_a.text()),
        5,
        "the supervisor noticing",
        *procs,
    )
    # the other web process serves meanwhile
    assert all([await _ready(a) for _ in range(5)])
    await _until(
        lambda: len(re.findall(r"web process 1 serving", app_a.text())) == 2,
        30,
        "web process 1 restarted",
        *procs,
    )
    figures["restart_s"] = round(time.monotonic() - killed_at, 1)


async def _job_workers_live(deps: Deps) -> int:
    """Job workers whose heartbeat is fresh (the queue's own rule: 3 heartbeats)."""
    return int(
        await deps.db.fetchval(
            "SELECT count(*) FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - make_interval(secs => $1)",
            3 * HEARTBEAT_S,
        )
    )


def _logged(procs: tuple[Proc, ...], event: str, tick: int | None = None) -> int:
    """Deferrals / starts / successes of the report's build job the processes logged (the
    queue deletes successful jobs and keeps only the latest deferral, so the workers' own
    log lines are the record of each one)."""
    stamp = str(tick) if tick is not None else r"\d+"
    job = rf"reports\.build_daily_report\[\d+\]\(timestamp={stamp}\)"
    pattern = {
        "deferred": rf"Periodic job {job} deferred",
        "started": rf"Starting job {job}",
        "succeeded": rf"{job} ended with status: Success",
    }[event]
    return sum(len(re.findall(pattern, p.text())) for p in procs)


async def _report_runs_once_per_tick(
    deps: Deps, both_live_at: float, figures: dict[str, object], *procs: Proc
) -> None:
    """The first tick after both job workers were live: deferred once, run once; and no
    build of any tick ran twice (the report's build counter equals the runs)."""
    tick = (int(both_live_at) // TICK_EVERY_S + 1) * TICK_EVERY_S
    if tick - both_live_at < 1.0:
        tick += TICK_EVERY_S
    await _until(
        lambda: _logged(procs, "succeeded", tick),
        tick - time.time() + 60,
        "the report of the tick",
        *procs,
    )
    await asyncio.sleep(1.0)  # a second run of the tick, if there were one, would show now
    assert await _job_workers_live(deps) == 2  # both were live before the tick and after it
    figures["report_tick"] = [_logged(procs, e, tick) for e in ("deferred", "started", "succeeded")]
    assert figures["report_tick"] == [1, 1, 1]

    async def settled() -> bool:  # no build in progress: the counter and the runs compare
        return not await deps.db.fetchval(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = "
            "'reports.build_daily_report' AND status IN ('todo', 'doing')"
        )

    await _until(settled, 60, "report builds settled", *procs)
    builds = await deps.db.fetchval("SELECT coalesce(sum(builds), 0) FROM daily_reports")
    logged = [_logged(procs, e) for e in ("deferred", "started", "succeeded")]
    figures["report_all_ticks_deferred_started_succeeded_built"] = [*logged, builds]
    assert logged == [builds] * 3


def test_workers_on_a_taken_port_exit_at_once_touching_nothing(tmp_path: Path) -> None:
    import socket
    import subprocess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        # nothing listens at these: the parent must not need them to refuse
        env.update(
            PYTHONPATH=str(REPO_ROOT),
            DATABASE_URL="postgresql://127.0.0.1:9/none",
            REDIS_URL="redis://127.0.0.1:9/0",
            CHAINLENS_DATA_DIR=str(tmp_path),
        )
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "chainlens.cli", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "web process" not in done.stderr  # none was started
    assert time.monotonic() - began < 30
