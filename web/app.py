"""The FastAPI application: one `create_app()` that every entry point uses."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from chainlens.deps import Deps, open_deps
from chainlens.settings import Settings
from web.errors import COMMON_RESPONSES, install_error_handlers
from web.metrics import HttpMetrics, MetricsMiddleware
from web.middleware import SecurityHeadersMiddleware
from web.routes import analysis
from web.routes import billing as billing_routes
from web.routes import account, chat, comprehensive, health, pages
from web.routes import reports as report_routes


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

    app = FastAPI(
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
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE"], allow_headers=["Content-Type", "Authorization"],
            expose_headers=["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                            "Retry-After"],
        )
    app.add_middleware(SecurityHeadersMiddleware,
                       hsts=str(settings.public_base_url).startswith("https://"))
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(health.router)
    app.include_router(pages.router)
    app.include_router(chat.router)
    app.include_router(account.router)
    # Each part registers its router here (one line each).
    # tools: analysis routes; billing: payment/usage/webhook/auth routes; agent: comprehensive.
    app.include_router(analysis.router)
    app.include_router(comprehensive.router)
    billing_routes.install(app)
    app.include_router(report_routes.router)
    return app
