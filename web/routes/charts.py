"""`GET /api/chart/{project}.png`: the price chart of a project's newest snapshot, and
`GET /api/chart/compare.png?ids=a,b[,c]`: a comparison's projects' prices normalised to 100 at
a common start (what a comparison answer links to).

Public (answers link to them), so they are bounded three ways: the PNG is kept per snapshot
in Redis, renders share a few slots per process, and each client IP may ask
`CHART_REQUESTS_PER_MIN` times a minute (both kinds together).
"""

from __future__ import annotations

import asyncio
import re
import time

from fastapi import APIRouter, Request, Response
from redis.exceptions import RedisError

from chainlens.charts import Chart, ChartBusy, NoChart, comparison_chart, snapshot_chart
from chainlens.deps import Deps
from chainlens.i18n import as_language, localizer
from tools.resolve import MAX_COMPARED
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
            deps.settings.chart_render_concurrency
        )
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


def comparison_chart_url(project_ids: list[str], language: str = "en") -> str:
    """Where a comparison answer's chart is served (the widget shows it under the answer)."""
    url = "/api/chart/compare.png?ids=" + ",".join(project_ids)
    return url + (f"&lang={language}" if language != "en" else "")


def _compared_ids(ids: str | None) -> list[str]:
    """The `ids` parameter as 2..MAX_COMPARED distinct project ids, or a 400 saying why."""
    wanted = [i.strip() for i in (ids or "").split(",") if i.strip()]
    if not wanted:
        raise ApiError(
            400,
            "invalid_request",
            "ids is required: two or three project ids separated by commas, "
            "e.g. ?ids=solana,ethereum.",
        )
    bad = [i for i in wanted if not _PROJECT_ID.fullmatch(i)]
    if bad:
        raise ApiError(
            400,
            "invalid_request",
            f"invalid project id '{bad[0][:100]}': ids must be a-z, 0-9 and '-'.",
        )
    if len(set(wanted)) != len(wanted):
        raise ApiError(400, "invalid_request", "each project may appear in ids only once.")
    if not 2 <= len(wanted) <= MAX_COMPARED:
        raise ApiError(
            400,
            "invalid_request",
            f"a comparison chart needs 2 to {MAX_COMPARED} project ids; got {len(wanted)}.",
        )
    return wanted


async def _limited(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    retry_after = await _count_request(deps, client_ip(request))
    if retry_after is not None:
        raise ApiError(
            429,
            "rate_limited",
            "Too many chart requests; please wait a minute.",
            headers={"Retry-After": str(retry_after)},
        )
    return deps


def _png(request: Request, chart: Chart, etag: str) -> Response:
    headers = {"Cache-Control": "public, max-age=300", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(chart.png, media_type="image/png", headers=headers)


_BUSY = ("Charts are busy; please try again shortly.", {"Retry-After": "5"})


# Registered before `/api/chart/{project_id}.png`, which would otherwise take "compare".
@router.get(
    "/api/chart/compare.png",
    responses={
        200: {"content": {"image/png": {}}},
        400: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        429: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
async def comparison_price_chart(
    request: Request, ids: str | None = None, lang: str | None = None
) -> Response:
    """Two or three projects' prices from their newest on-chain snapshots, normalised to 100
    at a common start (`ids=solana,ethereum`; `lang=vi` for a Vietnamese title)."""
    project_ids = _compared_ids(ids)
    language = as_language(lang) or "en"
    deps = await _limited(request)
    try:
        chart = await comparison_chart(
            deps, project_ids, render_slots(request), localizer(language)
        )
    except NoChart as exc:
        names = ", ".join(f"'{p}'" for p in exc.missing)
        raise ApiError(
            404,
            "no_chart",
            f"No price history stored for {names} yet.",
            details={"missing": list(exc.missing)},
        ) from None
    except ChartBusy:
        raise ApiError(503, "busy", _BUSY[0], headers=_BUSY[1]) from None
    return _png(request, chart, f'"compare-{language}-{",".join(project_ids)}-{chart.version}"')


@router.get(
    "/api/chart/{project_id}.png",
    responses={
        200: {"content": {"image/png": {}}},
        404: {"model": ErrorResponse},
        429: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
async def price_chart(project_id: str, request: Request) -> Response:
    """The price chart of a project from its newest on-chain snapshot."""
    if not _PROJECT_ID.fullmatch(project_id):
        raise ApiError(422, "invalid_request", "project id must be a-z, 0-9 and '-'.")
    deps = await _limited(request)
    try:
        chart = await snapshot_chart(deps, project_id, render_slots(request))
    except NoChart:
        raise ApiError(
            404, "no_chart", f"No price history stored for '{project_id}' yet."
        ) from None
    except ChartBusy:
        raise ApiError(503, "busy", _BUSY[0], headers=_BUSY[1]) from None
    return _png(request, chart, f'"{project_id}-{chart.version}"')
