"""`GET /api/chart/{project}.png`: the price chart of a project's newest snapshot.

Public (answers link to it), so it is bounded three ways: the PNG is kept per snapshot in
Redis, renders share a few slots per process, and each client IP may ask
`CHART_REQUESTS_PER_MIN` times a minute.
"""

from __future__ import annotations

import asyncio
import re
import time

from fastapi import APIRouter, Request, Response
from redis.exceptions import RedisError

from chainlens.charts import ChartBusy, NoChart, snapshot_chart
from chainlens.deps import Deps
from web.auth import client_ip
from web.errors import ApiError, ErrorResponse

router = APIRouter(tags=["chat"])
_PROJECT_ID = re.compile(r"[a-z0-9-]{1,100}")


def render_slots(request: Request) -> asyncio.Semaphore:
    """This app's render slots (created on first use, sized by CHART_RENDER_CONCURRENCY)."""
    slots = getattr(request.app.state, "chart_slots", None)
    if slots is None:
        deps: Deps = request.app.state.deps
        slots = request.app.state.chart_slots = asyncio.Semaphore(
            deps.settings.chart_render_concurrency)
    return slots


async def _count_request(deps: Deps, ip: str) -> int | None:
    """Count a chart request for `ip`; seconds to wait when over the minute's budget."""
    window = int(time.time() // 60)
    key = deps.keys("chart-ip", ip, window)
    try:
        async with deps.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 61)
            count, _ = await pipe.execute()
    except RedisError:
        return None  # the render slots still bound the CPU while Redis is away
    if int(count) > deps.settings.chart_requests_per_min:
        return max(1, (window + 1) * 60 - int(time.time()))
    return None


@router.get("/api/chart/{project_id}.png", responses={
    200: {"content": {"image/png": {}}}, 404: {"model": ErrorResponse},
    429: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
async def price_chart(project_id: str, request: Request) -> Response:
    """The price chart of a project from its newest on-chain snapshot."""
    if not _PROJECT_ID.fullmatch(project_id):
        raise ApiError(422, "invalid_request", "project id must be a-z, 0-9 and '-'.")
    deps: Deps = request.app.state.deps
    retry_after = await _count_request(deps, client_ip(request))
    if retry_after is not None:
        raise ApiError(429, "rate_limited", "Too many chart requests; please wait a minute.",
                       headers={"Retry-After": str(retry_after)})
    try:
        chart = await snapshot_chart(deps, project_id, render_slots(request))
    except NoChart:
        raise ApiError(404, "no_chart", f"No price history stored for '{project_id}' yet.") from None
    except ChartBusy:
        raise ApiError(503, "busy", "Charts are busy; please try again shortly.",
                       headers={"Retry-After": "5"}) from None
    etag = f'"{project_id}-{chart.snapshot_id}"'
    headers = {"Cache-Control": "public, max-age=300", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(chart.png, media_type="image/png", headers=headers)
