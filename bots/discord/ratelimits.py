"""Discord's 429s, shared: discord.py waits a 429 out in this process; this trace also puts
the hold on the shared send limiter, so every other process (other shards, report workers)
pauses too instead of walking into the same limit."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import aiohttp

from chainlens.limiter import SendLimiter

log = logging.getLogger(__name__)
_CHANNEL = re.compile(r"/channels/(\d+)/")


def retry_after_of(headers: aiohttp.typedefs.LooseHeaders) -> float:
    """The wait a 429 asks for: the precise reset-after when given, else Retry-After."""
    values = {str(k).lower(): str(v) for k, v in dict(headers).items()}
    for name in ("x-ratelimit-reset-after", "retry-after"):
        try:
            return max(0.0, float(values[name]))
        except (KeyError, ValueError):
            continue
    return 1.0


def rate_limit_trace(limiter: SendLimiter) -> aiohttp.TraceConfig:
    """An aiohttp trace for discord.py's session that records 429s as limiter holds."""

    async def on_request_end(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        response = params.response
        if response.status != 429:
            return
        is_global = response.headers.get("X-RateLimit-Global", "").lower() == "true"
        found = _CHANNEL.search(params.url.path)
        channel = found.group(1) if found else None
        if not is_global and channel is None:
            return  # a per-interaction webhook bucket: nobody else sends there
        try:
            await limiter.hold(
                "discord",
                chat=None if is_global else channel,
                seconds=retry_after_of(response.headers),
            )
        except Exception:  # the limiter must never break discord.py's own handling
            log.warning("could not record a Discord 429 in the send limiter", exc_info=True)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace
