"""The FastAPI application: one `create_app()` that every entry point uses."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from chainlens.deps import Deps, open_deps
from chainlens.settings import Settings
from web.errors import COMMON_RESPONSES, install_error_handlers
from web.metrics import HttpMetrics
from web.middleware import EdgeMiddleware
from web.routes import (
    account,
    analysis,
    charts,
    chat,
    checkout_link,
    comprehensive,
    health,
    history,
    language,
    pages,
    telegram,
)
from web.routes import billing as billing_routes
from web.routes import reports as report_routes
from web.routes import watch as watch_routes


def create_app(settings: Settings, *, deps: Deps | None = None) -> FastAPI:
    """Build the app. With `deps` given, the caller owns the resources (tests, embedding)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if deps is not None:
            app.state.deps = deps
            yield
            return
        async with open_deps(settings) as opened:
            app.state.deps = opened
            yield

    # Swagger UI and ReDoc assets come from the fastapi-offline package, not a CDN.
    app = FastAPIOffline(
        favicon_url="/favicon.svg",
        static_url="/static/docs",
        title="ChainLens API",
        version="0.1.0",
        description="Crypto project research: on-chain, sentiment, tokenomics and team analysis.",
        lifespan=lifespan,
        responses=COMMON_RESPONSES,
    )
    app.state.started_at = time.monotonic()
    app.state.metrics = HttpMetrics()
    if deps is not None:
        app.state.deps = deps
    install_error_handlers(app)
    # One pure ASGI layer: metrics, security headers, session cookies, widget CORS, bounded
    # bodies (bounded before any route reads them; the widget's 413s get CORS headers too).
    public = urlsplit(str(settings.public_base_url))
    app.add_middleware(
        EdgeMiddleware,
        metrics=app.state.metrics,
        hsts=str(settings.public_base_url).startswith("https://"),
        max_body=settings.max_body_bytes,
        max_webhook_body=settings.max_webhook_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        cors_origins=settings.cors_origins,
        public_origin=f"{public.scheme}://{public.netloc}",
    )
    app.include_router(health.router)
    app.include_router(pages.router)
    app.include_router(chat.router)
    app.include_router(charts.router)
    app.include_router(account.router)
    app.include_router(history.router)
    app.include_router(language.router)
    # Each part registers its router here (one line each).
    # tools: analysis routes; billing: payment/usage/webhook/auth routes; agent: comprehensive.
    app.include_router(analysis.router)
    app.include_router(comprehensive.router)
    billing_routes.install(app)
    app.include_router(checkout_link.router)
    app.include_router(telegram.router)
    app.include_router(report_routes.router)
    app.include_router(watch_routes.router)
    return app


def app_from_env() -> FastAPI:
    """The app with settings from the environment, for servers that start their own worker
    processes from an app factory (`uvicorn --factory web.app:app_from_env`, granian's
    `--factory`; the benchmark compares them): its lifespan opens and closes the resources.
    `chainlens serve` builds the app itself (it shares the resources with the bots)."""
    from chainlens.logs import configure_logging
    from chainlens.settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
