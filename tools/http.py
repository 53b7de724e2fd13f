"""The one place the tools call the outside world: GET JSON or bytes, with retries and limits.

Exceptions (all carry `source`, `url` and a plain `reason`):

    SourceError            base class; a source could not give us what we asked for
    ├── SourceUnavailable  transport error, timeout, 429 or 5xx after retries, rate budget spent
    ├── NotFound           404, or a body saying the thing does not exist
    └── BadResponse        malformed JSON, an unexpected shape, another 4xx, an error envelope

Only transport errors, 429 and 5xx are retried (jittered exponential backoff, `Retry-After`
honoured up to a cap). Each host has one request budget shared by every ChainLens process
through Redis (`chainlens.limiter`, a sliding window): keyless CoinGecko is held to
`settings.coingecko_rate_per_min`, keyless GitHub to 60 an hour. When Redis is unreachable a
per-process `AsyncLimiter` holds the same rate. Identical GETs may share one in-flight request
and a short memo (`memo_ttl`), so parallel tools needing `/coins/{id}` make one upstream call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
from aiolimiter import AsyncLimiter
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from chainlens import best_effort
from chainlens.deps import Deps
from chainlens.limiter import Rate, SendLimiter, SendQueueTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")


class SourceError(Exception):
    """A data source could not give us what we asked for."""

    def __init__(self, source: str, url: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.url = url
        self.reason = reason


class SourceUnavailable(SourceError):
    """Transport failure, timeout, 429/5xx after retries, or the rate budget is spent."""


class SourceBusy(SourceUnavailable):
    """Our shared request budget for this source is spent for now (not the source's fault)."""


class NotFound(SourceError):
    """The source says the requested thing does not exist."""


class BadResponse(SourceError):
    """The source answered, but not with something we can use."""


class _Transient(SourceUnavailable):
    """Internal: worth another attempt (carries Retry-After when the server sent one)."""

    def __init__(self, source: str, url: str, reason: str, retry_after: float | None = None):
        super().__init__(source, url, reason)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    base_wait_s: float = 0.5
    max_wait_s: float = 8.0
    retry_after_cap_s: float = 15.0
    limiter_wait_cap_s: float = 20.0  # give up rather than queue longer for a rate slot


@dataclass(frozen=True, slots=True)
class HttpOptions:
    retry: RetryPolicy = RetryPolicy()
    github_stats_attempts: int = 3  # GitHub stats answer 202 while computing
    github_stats_wait_s: float = 2.0
    # Compresses time: divides every source budget's window and every memo's lifetime (a
    # simulation runs an hour in a minute with 60). Always 1 outside simulations.
    time_scale: float = 1.0


@dataclass(slots=True)
class _ClientState:
    options: HttpOptions
    limiters: dict[str, AsyncLimiter] = field(default_factory=dict)
    shared: dict[tuple[str, bool], SendLimiter] = field(default_factory=dict)
    memo: dict[str, tuple[float, asyncio.Future[Any]]] = field(default_factory=dict)


# Keyed by the shared httpx client: options, limiters and the memo live exactly as long as it.
_STATES: weakref.WeakKeyDictionary[httpx.AsyncClient, _ClientState] = weakref.WeakKeyDictionary()
_DEFAULT_RATE_PER_MIN = 300  # polite ceiling for hosts without a documented limit


def configure_http(deps: Deps, options: HttpOptions) -> None:
    """Set retry/backoff options for this Deps' HTTP client (tests use tiny waits)."""
    _STATES[deps.http] = _ClientState(options=options)


def _state(deps: Deps) -> _ClientState:
    state = _STATES.get(deps.http)
    if state is None:
        state = _STATES[deps.http] = _ClientState(options=HttpOptions())
    return state


def http_options(deps: Deps) -> HttpOptions:
    return _state(deps).options


def coingecko_rate(deps: Deps) -> int:
    """Calls per minute allowed to CoinGecko: the Demo key raises the keyless budget."""
    rate = deps.settings.coingecko_rate_per_min
    return max(rate, 30) if deps.settings.coingecko_api_key else rate


def source_budget(deps: Deps, host: str) -> Rate:
    """How many calls the whole service may make to `host`, per window."""
    settings = deps.settings
    if host == urlsplit(str(settings.coingecko_base_url)).netloc:
        return Rate(coingecko_rate(deps), 60.0)
    if host == urlsplit(str(settings.github_api_url)).netloc:
        # GitHub: 60 calls/hour keyless, 5000 with a token
        return Rate(
            settings.github_rate_per_hour or (5000 if settings.github_token else 60), 3600.0
        )
    return Rate(_DEFAULT_RATE_PER_MIN, 60.0)


def _limiter(deps: Deps, host: str) -> AsyncLimiter:
    state = _state(deps)
    limiter = state.limiters.get(host)
    if limiter is None:
        rate = source_budget(deps, host)
        limiter = state.limiters[host] = AsyncLimiter(rate.limit, rate.window_s)
    return limiter


def foreground_share(limit: int) -> int:
    """Questions may use all but a fifth of a budget (at least one call stays reserved for
    background refreshes when the budget has more than one)."""
    return limit if limit <= 1 else limit - max(1, limit // 5)


async def _take_budget(deps: Deps, source: str, url: str, *, background: bool = False) -> None:
    """One call from the host's budget, shared by every process; `SourceBusy` when none
    frees up within the policy's wait cap."""
    host = urlsplit(url).netloc
    state = _state(deps)
    cap = state.options.retry.limiter_wait_cap_s
    bucket = f"src:{host}"
    shared = state.shared.get((host, background))
    if shared is None:
        # Both priorities count in one window (one Redis key); questions stop short of the
        # reserve, background calls may take it.
        rate = source_budget(deps, host)
        limit = rate.limit if background else foreground_share(rate.limit)
        rate = Rate(limit, rate.window_s / state.options.time_scale)
        shared = state.shared[(host, background)] = SendLimiter(
            deps.redis, deps.keys, {bucket: rate}
        )
    if best_effort.usable(deps.redis):
        try:
            await shared.acquire(bucket, timeout_s=cap)
            best_effort.mark_ok(deps.redis)
            return
        except SendQueueTimeout:
            raise SourceBusy(source, url, _BUSY) from None
        except (RedisError, OSError) as exc:
            # logged once per outage; this process's own limiter holds the same rate meanwhile
            best_effort.mark_failed(deps.redis, "shared request budget", exc)
    try:
        async with asyncio.timeout(cap):
            await _limiter(deps, host).acquire()
    except TimeoutError:
        raise SourceBusy(source, url, _BUSY) from None


_BUSY = "too busy right now (request limit reached); try again in a minute"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_random_exponential(multiplier=policy.base_wait_s, max=policy.max_wait_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, policy.retry_after_cap_s)
        return float(backoff(state))

    return wait


async def _send_once(
    deps: Deps,
    source: str,
    url: str,
    params: dict[str, Any] | None,
    headers: dict[str, str] | None,
    background: bool,
) -> httpx.Response:
    await _take_budget(deps, source, url, background=background)
    try:
        response = await deps.http.get(url, params=params, headers=headers)
    except httpx.TimeoutException as exc:
        raise _Transient(source, url, f"timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise _Transient(source, url, f"connection failed ({type(exc).__name__})") from exc
    status = response.status_code
    if status == 429 or status >= 500:
        raise _Transient(source, url, f"HTTP {status}", _retry_after(response))
    if status == 404:
        raise NotFound(source, url, "not found (HTTP 404)")
    if status >= 400:
        raise BadResponse(source, url, f"HTTP {status}")
    return response


async def get(
    deps: Deps,
    url: str,
    *,
    source: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    background: bool = False,
) -> httpx.Response:
    """GET with retries on transport errors, 429 and 5xx; any 2xx response is returned.

    `background` calls (the warming job's batched quotes) may use the share of the budget
    that questions leave free, so a busy minute never starves the refresh that keeps every
    answer's prices fresh."""
    policy = _state(deps).options.retry
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(policy.attempts),
            wait=_wait(policy),
            reraise=True,
        ):
            with attempt:
                return await _send_once(deps, source, url, params, headers, background)
    except _Transient as exc:
        log.warning("%s unavailable after %d attempts: %s", source, policy.attempts, exc.reason)
        raise SourceUnavailable(
            source, url, f"{exc.reason} after {policy.attempts} attempts"
        ) from exc
    raise AssertionError("unreachable")  # pragma: no cover


async def memoized(deps: Deps, key: str, ttl: float, fetch: Callable[[], Awaitable[T]]) -> T:
    """Share one in-flight call and its result for `ttl` seconds; failures are not kept."""
    state = _state(deps)
    now = time.monotonic()
    hit = state.memo.get(key)
    if hit is not None and (hit[0] > now or not hit[1].done()):
        return await asyncio.shield(hit[1])
    if len(state.memo) > 2000:  # drop expired entries so the memo stays small
        for k in [k for k, (exp, fut) in state.memo.items() if exp <= now and fut.done()]:
            del state.memo[k]
    # Own task + shield: a cancelled caller does not cancel the call others share.
    task: asyncio.Future[Any] = asyncio.ensure_future(fetch())
    state.memo[key] = (now + ttl / state.options.time_scale, task)

    def forget_failure(done: asyncio.Future[Any]) -> None:
        failed = done.cancelled() or done.exception() is not None
        if failed and state.memo.get(key, (0.0, None))[1] is done:
            del state.memo[key]  # failures are not kept

    task.add_done_callback(forget_failure)
    return await asyncio.shield(task)


def _memo_key(url: str, params: dict[str, Any] | None) -> str:
    return url + ("?" + urlencode(sorted(params.items())) if params else "")


async def get_json(
    deps: Deps,
    url: str,
    *,
    source: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    memo_ttl: float = 0.0,
    background: bool = False,
) -> Any:
    """GET and decode JSON; BadResponse when the body is not JSON."""

    async def fetch() -> Any:
        response = await get(
            deps, url, source=source, params=params, headers=headers, background=background
        )
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise BadResponse(source, url, "response is not valid JSON") from None

    if memo_ttl <= 0:
        return await fetch()
    return await memoized(deps, "json " + _memo_key(url, params), memo_ttl, fetch)


async def get_bytes(
    deps: Deps,
    url: str,
    *,
    source: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    memo_ttl: float = 0.0,
) -> bytes:
    """GET a raw body (RSS feeds)."""

    async def fetch() -> bytes:
        return (await get(deps, url, source=source, params=params, headers=headers)).content

    if memo_ttl <= 0:
        return await fetch()
    return await memoized(deps, "bytes " + _memo_key(url, params), memo_ttl, fetch)
