"""Per-account quotas: a minute and a UTC-day window, checked and consumed atomically.

`consume_request` runs one Redis Lua script (see `billing.quota_store` for the script, the
PostgreSQL fallback and how the two are reconciled). Every bucket a request counts against is
decided in the same atomic step:
- `acct:<id>` — the account, with its tier's (or its own) limits;
- `email:<name@domain>` — free accounts with an e-mail address, with sub-address tags folded
  (`name+1@domain` counts as `name@domain`), so aliases do not multiply the free tier;
- `web-ip:<network>` — free web and API callers pass their client network (an IPv4 address
  or an IPv6 /64): a shared, larger allowance (`FREE_IP_DAILY`), so clearing cookies gains
  little and a new visitor behind a busy office address is still served.
`consume_limits` decides plain named buckets the same way (sign-in e-mails, new anonymous
accounts per network).

When neither Redis nor PostgreSQL can decide, paid tiers are admitted (no paid request is
refused for infrastructure reasons) and free requests raise `QuotaUnavailable`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from billing import quota_store as store
from billing.accounts import Account
from billing.errors import QuotaUnavailable
from chainlens.deps import Deps
from chainlens.i18n import ENGLISH, Localizer
from chainlens.settings import TierName

log = logging.getLogger(__name__)

WindowName = Literal["minute", "day"]
Backend = Literal["redis", "postgres", "none"]
Scope = Literal["account", "network"]
IP_BUCKET = "web-ip:"
# A command sent whose reply did not come in time: it may have run.
_LOST_REPLY = (RedisTimeoutError, asyncio.TimeoutError)
_PG_DOWN_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: datetime
    retry_after_s: int | None
    window: WindowName | None
    tier: TierName
    upgrade_url: str = ""
    day_used: int = 0  # the day window of the tightest bucket, whatever refused
    day_limit: int = 0
    # What the decision consumed, so a refund gives back exactly that.
    plan: store.Plan | None = field(default=None, repr=False, compare=False)
    backend: Backend = "redis"
    scope: Scope = "account"  # whose allowance refused: the account or the client network
    # The read that rode in the quota script and its raw reply (`quota_store.Rider`); None
    # when it did not run (refused, decided in PostgreSQL, or a cluster): read it yourself.
    ridden: tuple[store.Rider, list[Any]] | None = field(default=None, repr=False, compare=False)

    def refusal_message(self, loc: Localizer = ENGLISH) -> str:
        """The refusal in words, for bots and the web widget, in `loc`'s language."""
        if self.allowed:
            return ""
        wait = human_duration(self.retry_after_s or 0, loc)
        limit = loc.count(self.limit)
        if self.scope == "network":
            if self.window == "minute":
                text = loc._(
                    "Too many free requests from your network right now: {limit} per "
                    "minute are allowed from one address. Try again in {wait}."
                )
            else:
                text = loc._(
                    "Your network has used all {limit} free requests shared by its "
                    "visitors today. They reset at 00:00 UTC (in {wait})."
                )
        elif self.window == "minute":
            text = (
                loc._(
                    "Slow down a little: the {tier} plan allows {limit} request per "
                    "minute. Try again in {wait}."
                )
                if self.limit == 1
                else loc._(
                    "Slow down a little: the {tier} plan allows {limit} requests per "
                    "minute. Try again in {wait}."
                )
            )
        else:
            text = loc._(
                "You have used all {limit} requests for today on the {tier} plan. "
                "Your quota resets at 00:00 UTC (in {wait})."
            )
        text = text.format(limit=limit, wait=wait, tier=self.tier)
        if self.tier != "enterprise" and self.upgrade_url:
            text += " " + loc._("Upgrade for more: {url}").format(url=self.upgrade_url)
        return text


def human_duration(seconds: int, loc: Localizer = ENGLISH) -> str:
    """'42 s', '7 min', '3 h 5 min' (vi: '42 giây', '7 phút', '3 giờ 5 phút')."""
    if seconds < 60:
        return loc._("{n} s").format(n=max(seconds, 1))
    hours, rest = divmod(seconds, 3600)
    minutes = math.ceil(rest / 60)
    if hours:
        return loc._("{hours} h {minutes} min").format(hours=hours, minutes=minutes)
    return loc._("{n} min").format(n=minutes)


def upgrade_url(deps: Deps) -> str:
    return str(deps.settings.public_base_url).rstrip("/") + "/pricing"


def quota_email(email: str) -> str:
    """The address quotas count against: lower-cased, sub-address tag (`+tag`) removed."""
    local, _, domain = email.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _buckets(deps: Deps, account: Account, client_ip: str | None) -> list[store.Bucket]:
    if account.id <= 0:
        raise ValueError("a provisional account is saved before it is charged")
    default = deps.settings.limits_for(account.tier)
    minute, daily = account.minute_limit or default.minute, account.daily_limit or default.daily
    buckets = [store.Bucket(f"acct:{account.id}", minute, daily)]
    if account.tier == "free" and account.email:
        buckets.append(store.Bucket(f"email:{quota_email(account.email)}", minute, daily))
    if client_ip and account.tier == "free":
        settings = deps.settings
        buckets.append(
            store.Bucket(f"{IP_BUCKET}{client_ip}", settings.free_ip_minute, settings.free_ip_daily)
        )
    return buckets


def _peek_buckets(deps: Deps, account: Account, client_ip: str | None) -> list[store.Bucket]:
    """The buckets a peek reads; a provisional (unsaved) account has used nothing yet."""
    if account.id > 0:
        return _buckets(deps, account, client_ip)
    limits = deps.settings.limits_for(account.tier)
    buckets = [store.Bucket("acct:new", limits.minute, limits.daily)]
    if client_ip:
        settings = deps.settings
        buckets.append(
            store.Bucket(f"{IP_BUCKET}{client_ip}", settings.free_ip_minute, settings.free_ip_daily)
        )
    return buckets


def _decide(
    deps: Deps,
    tier: TierName,
    plan: store.Plan,
    now: float,
    *,
    allowed: bool,
    refused: tuple[int, WindowName] | None,
    counts: dict[str, tuple[int, int]],
    backend: Backend,
) -> QuotaDecision:
    """Build the decision from (minute, day) counts per bucket."""
    url = upgrade_url(deps)
    tightest = min(plan.buckets, key=lambda b: b.day_limit - counts[b.name][1])
    day_used, day_limit = min(counts[tightest.name][1], tightest.day_limit), tightest.day_limit
    if refused is not None:
        index, window = refused
        bucket = plan.buckets[index]
        end = plan.minute.end_epoch if window == "minute" else plan.day.end_epoch
        limit = bucket.minute_limit if window == "minute" else bucket.day_limit
        return QuotaDecision(
            allowed=False,
            limit=limit,
            remaining=0,
            reset_at=datetime.fromtimestamp(end, UTC),
            retry_after_s=max(1, math.ceil(end - now)),
            window=window,
            tier=tier,
            upgrade_url=url,
            plan=plan,
            backend=backend,
            scope="network" if bucket.name.startswith(IP_BUCKET) else "account",
            day_used=day_used,
            day_limit=day_limit,
        )
    # Allowed (or a peek): report the day window of the tightest bucket.
    return QuotaDecision(
        allowed=allowed,
        limit=tightest.day_limit,
        remaining=max(0, tightest.day_limit - counts[tightest.name][1]),
        reset_at=datetime.fromtimestamp(plan.day.end_epoch, UTC),
        retry_after_s=None,
        window=None,
        tier=tier,
        upgrade_url=url,
        plan=plan,
        backend=backend,
        day_used=day_used,
        day_limit=day_limit,
    )


def _script_args(
    plan: store.Plan, mode: str, seeds: dict[tuple[str, str], int] | None
) -> list[EncodableT]:
    args: list[EncodableT] = [
        plan.minute.end_epoch + store._MINUTE_GRACE_S,
        plan.day.end_epoch + store._DAY_GRACE_S,
        mode,
        "1" if seeds else "0",
    ]
    for b in plan.buckets:
        args += [
            b.minute_limit,
            b.day_limit,
            (seeds or {}).get((b.name, "minute"), 0),
            (seeds or {}).get((b.name, "day"), 0),
        ]
    return args


async def _reseed_dirty(deps: Deps, now: float) -> None:
    """Redis is back: lift its counters to PostgreSQL's for buckets decided there meanwhile."""
    dirty = store.dirty_buckets(deps)
    if not dirty:
        return
    names = sorted(dirty)
    plan = store.Plan.at([store.Bucket(n, 1, 1) for n in names], now)
    seeds = await store.ledger_counts(deps.db, plan.ledger_rows())
    # peek mode with seeds: only raises counters, consumes nothing
    await store.run_script(
        deps.redis, store.CONSUME_LUA, plan.redis_keys(deps), _script_args(plan, "peek", seeds)
    )
    dirty.difference_update(names)
    log.info("quota: re-seeded %d bucket(s) into Redis from PostgreSQL", len(names))


_seed_reads: dict[tuple[str, ...], asyncio.Future[dict[tuple[str, str], int]]] = {}


async def _seeds_for(deps: Deps, plan: store.Plan) -> dict[tuple[str, str], int]:
    """PostgreSQL counts for the plan's windows; concurrent callers share one query."""
    key = (deps.keys.prefix, *(f"{b}:{k}:{s.isoformat()}" for b, k, s in plan.ledger_rows()))
    pending = _seed_reads.get(key)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[dict[tuple[str, str], int]] = asyncio.get_running_loop().create_future()
    _seed_reads[key] = future
    try:
        seeds = await store.ledger_counts(deps.db, plan.ledger_rows())
    except _PG_DOWN_ERRORS as exc:
        # Redis lost its counters and PostgreSQL is down too: start from zero, loudly.
        log.error("quota: cannot seed Redis from PostgreSQL (%s)", type(exc).__name__)
        seeds = {(b, k): 0 for b, k, _ in plan.ledger_rows()}
    except BaseException as exc:
        future.set_exception(exc)
        future.add_done_callback(lambda f: f.exception())  # waiters re-raise; none is fine too
        raise
    finally:
        _seed_reads.pop(key, None)
    future.set_result(seeds)
    return seeds


async def _via_redis(
    deps: Deps,
    tier: TierName,
    plan: store.Plan,
    now: float,
    mode: str,
    rider: store.Rider | None = None,
) -> QuotaDecision:
    try:
        await _reseed_dirty(deps, now)
    except _PG_DOWN_ERRORS as exc:
        log.warning("quota: re-seed from PostgreSQL postponed (%s)", type(exc).__name__)
    keys = plan.redis_keys(deps)
    if mode == "consume":
        # This request's decision key: a resend after a lost reply gets the same decision.
        keys.append(plan.decision_key(deps, uuid.uuid4().hex))
    if rider is not None and not (mode == "consume" and store.can_ride(deps.redis, keys, rider)):
        rider = None
    reply: list[Any] | None = None

    async def once(args: list[EncodableT]) -> list[int]:
        nonlocal reply
        if rider is None:
            return await store.run_script(deps.redis, store.CONSUME_LUA, keys, args)
        decided, reply = await store.run_consume_with_rider(deps.redis, keys, args, rider)
        return decided

    async def run(seeds: dict[tuple[str, str], int] | None) -> list[int]:
        args = _script_args(plan, mode, seeds)
        try:
            return await once(args)
        except _LOST_REPLY as exc:
            if mode != "consume":
                raise
            # The script may have run (a busy Redis or a starved event loop, not an outage):
            # deciding from PostgreSQL now could admit what another process just admitted in
            # Redis and has not mirrored yet. Send it again: the decision key makes the resend
            # return the first decision if there was one, so nothing is consumed twice.
            log.info("quota: Redis reply lost (%s); asking again", type(exc).__name__)
            return await once(args)

    result = await run(None)
    if result[0] == -1:
        # A day key is missing: a new day, or a Redis that lost its data. Seed from PostgreSQL.
        result = await run(await _seeds_for(deps, plan))
    store.mark_redis_up(deps.redis)
    allowed, index, window_code, flat = result[0] == 1, result[1], result[2], result[3:]
    counts = {b.name: (flat[2 * i], flat[2 * i + 1]) for i, b in enumerate(plan.buckets)}
    if allowed and mode == "consume":
        rows = [
            (b.name, kind, w.start)
            for b in plan.buckets
            for kind, w in (("minute", plan.minute), ("day", plan.day))
        ]
        store.mirror_for(deps).record(rows, [c for b in plan.buckets for c in counts[b.name]])
    refused: tuple[int, WindowName] | None = None
    if not allowed:
        refused = (index - 1, "minute" if window_code == 1 else "day")
    decision = _decide(
        deps, tier, plan, now, allowed=allowed, refused=refused, counts=counts, backend="redis"
    )
    if rider is None or reply is None:
        return decision
    return dataclasses.replace(decision, ridden=(rider, reply))


async def _via_postgres(
    deps: Deps, tier: TierName, plan: store.Plan, now: float, mode: str
) -> QuotaDecision:
    await store.mirror_for(deps).flush()
    refused_at: tuple[str, str] | None = None
    async with deps.db.acquire() as conn:
        if mode == "consume":
            refused_at = await store.ledger_consume_committed(conn, plan)
        raw = await store.ledger_counts(conn, plan.ledger_rows())
    if mode == "consume":
        store.dirty_buckets(deps).update(b.name for b in plan.buckets)
    counts = {b.name: (raw[(b.name, "minute")], raw[(b.name, "day")]) for b in plan.buckets}
    refused: tuple[int, WindowName] | None = None
    if refused_at is not None:
        index = [b.name for b in plan.buckets].index(refused_at[0])
        refused = (index, "minute" if refused_at[1] == "minute" else "day")
    elif mode == "peek":
        for i, b in enumerate(plan.buckets):
            m, d = counts[b.name]
            if d >= b.day_limit or m >= b.minute_limit:
                refused = (i, "day" if d >= b.day_limit else "minute")
                break
    return _decide(
        deps,
        tier,
        plan,
        now,
        allowed=refused is None,
        refused=refused,
        counts=counts,
        backend="postgres",
    )


async def _decide_buckets(
    deps: Deps,
    tier: TierName,
    buckets: list[store.Bucket],
    mode: str,
    rider: store.Rider | None = None,
) -> QuotaDecision:
    now = time.time()
    plan = store.Plan.at(buckets, now)
    tried_redis = store.redis_usable(deps.redis)
    if tried_redis:
        try:
            return await _via_redis(deps, tier, plan, now, mode, rider)
        except store.REDIS_DOWN_ERRORS as exc:
            store.mark_redis_down(deps.redis)
            log.warning(
                "quota: Redis unavailable (%s); deciding from PostgreSQL", type(exc).__name__
            )
    try:
        return await _via_postgres(deps, tier, plan, now, mode)
    except _PG_DOWN_ERRORS as exc:
        if not tried_redis:
            # The breaker skipped Redis, but PostgreSQL is down too: Redis may be back by now,
            # and a request it can count must not go uncounted.
            try:
                return await _via_redis(deps, tier, plan, now, mode)
            except store.REDIS_DOWN_ERRORS:
                store.mark_redis_down(deps.redis)
        if tier == "free":
            raise QuotaUnavailable("quota store unavailable") from exc
        log.error("quota: Redis and PostgreSQL unavailable; admitting %s request", tier)
        counts = {b.name: (0, 0) for b in plan.buckets}
        return _decide(
            deps, tier, plan, now, allowed=True, refused=None, counts=counts, backend="none"
        )


async def consume_request(
    deps: Deps, account: Account, *, client_ip: str | None = None, rider: store.Rider | None = None
) -> QuotaDecision:
    """Consume one request from the account (and, for free web callers, their network) or
    refuse. `rider` (the turn cache's replay) runs in the same script once admitted, where
    the keys allow (`quota_store.Rider`); its reply is the decision's `ridden`."""
    return await _decide_buckets(
        deps, account.tier, _buckets(deps, account, client_ip), "consume", rider
    )


async def quota_status(
    deps: Deps, account: Account, *, client_ip: str | None = None
) -> QuotaDecision:
    """Where the account stands now, without consuming anything."""
    return await _decide_buckets(
        deps, account.tier, _peek_buckets(deps, account, client_ip), "peek"
    )


async def consume_limits(deps: Deps, *buckets: store.Bucket) -> QuotaDecision:
    """Consume one from each named bucket or refuse (free-tier rules when stores are down)."""
    return await _decide_buckets(deps, "free", list(buckets), "consume")


async def refund_request(deps: Deps, account: Account, decision: QuotaDecision) -> None:
    """Give back a request whose answer failed completely. Call once per decision."""
    await refund_decision(deps, decision)


async def refund_decision(deps: Deps, decision: QuotaDecision) -> None:
    """Give back what an allowed decision consumed. Call once per decision."""
    plan = decision.plan
    if not decision.allowed or plan is None or decision.backend == "none":
        return
    rows = plan.ledger_rows()
    if decision.backend == "redis" and store.redis_usable(deps.redis):
        try:
            await store.run_script(deps.redis, store.REFUND_LUA, plan.redis_keys(deps), [])
        except store.REDIS_DOWN_ERRORS:
            store.mark_redis_down(deps.redis)
        else:
            store.mirror_for(deps).record_refund(rows)
            return
    # Decided (or now only reachable) in PostgreSQL: the ledger is where the count lives.
    await store.mirror_for(deps).flush()
    await store.ledger_refund(deps.db, plan)
    if decision.backend == "postgres" and not (
        store.dirty_buckets(deps) & {b.name for b in plan.buckets}
    ):
        # Already re-seeded into Redis, which therefore holds this request too.
        try:
            await store.run_script(deps.redis, store.REFUND_LUA, plan.redis_keys(deps), [])
        except store.REDIS_DOWN_ERRORS:
            store.mark_redis_down(deps.redis)


async def flush_pending(deps: Deps) -> None:
    """Write this process's pending quota mirror rows to PostgreSQL (call on shutdown)."""
    await store.mirror_for(deps).flush()
