"""Health, readiness and Prometheus metrics.

The public sees up/down only; the reasons (driver errors, socket paths) and pool figures
are for callers with the admin key.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from chainlens.deps import Deps
from web.security import is_admin

router = APIRouter(tags=["health"])
_CHECK_TIMEOUT_S = 2.0


class HealthResponse(BaseModel):
    status: Literal["healthy", "unhealthy"]
    services: dict[str, str]
    details: dict[str, str] = {}
    metrics: dict[str, Any] = {}


async def check_postgres(deps: Deps) -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            await deps.db.fetchval("SELECT 1")
    except TimeoutError:
        return f"no answer within {_CHECK_TIMEOUT_S:.0f}s"
    except Exception as exc:  # noqa: BLE001 - any driver/socket failure is a "down" with its reason
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


async def check_redis(deps: Deps) -> str | None:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            await deps.redis.ping()
    except TimeoutError:
        return f"no answer within {_CHECK_TIMEOUT_S:.0f}s"
    except Exception as exc:  # noqa: BLE001 - any driver/socket failure is a "down"
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


@router.get(
    "/api/v1/health",
    response_class=JSONResponse,
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "a dependency is down"}},
)
async def health(request: Request) -> JSONResponse:
    """Report PostgreSQL and Redis status; 503 when either is down (reasons and metrics
    with the admin key)."""
    deps = _deps(request)
    pg_error, redis_error = await asyncio.gather(check_postgres(deps), check_redis(deps))
    settings = deps.settings
    services = {
        "postgres": "down" if pg_error else "up",
        "redis": "down" if redis_error else "up",
        "llm": "configured" if settings.llm_models else "deterministic writer",
        "telegram": "configured" if settings.telegram_bot_token else "off",
        "discord": "configured" if settings.discord_bot_token else "off",
        "stripe": "configured" if settings.stripe_secret_key else "off",
        "sendgrid": "configured" if settings.sendgrid_api_key else "off",
    }
    details = {k: v for k, v in (("postgres", pg_error), ("redis", redis_error)) if v}
    healthy = not details
    body = HealthResponse(status="healthy" if healthy else "unhealthy", services=services)
    if is_admin(request):
        body.details = details
        body.metrics = {
            "uptime_s": round(time.monotonic() - request.app.state.started_at, 1),
            "requests_total": request.app.state.metrics.total_requests(),
            "db_pool_size": deps.db.get_size(),
            "db_pool_idle": deps.db.get_idle_size(),
        }
    return JSONResponse(
        body.model_dump(),
        status_code=200 if healthy else 503,
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/ready",
    response_class=PlainTextResponse,
    responses={503: {"description": "not ready", "content": {"text/plain": {}}}},
)
async def ready(request: Request) -> Response:
    """Readiness for orchestrators: 200 only when PostgreSQL and Redis both answer."""
    deps = _deps(request)
    pg_error, redis_error = await asyncio.gather(check_postgres(deps), check_redis(deps))
    if pg_error or redis_error:
        down = [name for name, error in (("postgres", pg_error), ("redis", redis_error)) if error]
        if is_admin(request):
            reasons = [
                f"{name}: {error}"
                for name, error in (("postgres", pg_error), ("redis", redis_error))
                if error
            ]
            return PlainTextResponse("not ready: " + "; ".join(reasons), status_code=503)
        return PlainTextResponse("not ready: " + ", ".join(down) + " down", status_code=503)
    return PlainTextResponse("ready")


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    from reports.metrics import refresh_delivery_metrics

    holder = getattr(request.app.state, "delivery_metrics", None)
    if holder is None:
        holder = request.app.state.delivery_metrics = {}
    await refresh_delivery_metrics(_deps(request), request.app.state.metrics.registry, holder)
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
