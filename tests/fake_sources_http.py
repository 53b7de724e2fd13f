"""The fake data sources (tests/tools_fakes.FakeSources, with CoinGecko's `/global`) served
over HTTP on loopback, for `chainlens` subprocesses that cannot share the test's transport.

Each source lives under its own path prefix (`/coingecko/api/v3/...`); the request is handed
to FakeSources as if it had reached the real host, so the same bodies, routes and call counts
apply. `env(base_url)` gives the settings that point a subprocess at it.
"""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fake_delivery_sources import ReportSources
from tests.tools_fakes import FakeSources

# prefix -> (the real origin FakeSources routes by, the setting, the path the setting adds)
SOURCES: dict[str, tuple[str, str, str]] = {
    "coingecko": ("https://api.coingecko.com", "COINGECKO_BASE_URL", "/api/v3"),
    "defillama": ("https://api.llama.fi", "DEFILLAMA_BASE_URL", ""),
    "goplus": ("https://api.gopluslabs.io", "GOPLUS_BASE_URL", "/api/v1"),
    "github": ("https://api.github.com", "GITHUB_API_URL", ""),
    "feargreed": ("https://api.alternative.me", "FEAR_GREED_URL", "/fng/"),
    "news": ("https://www.coindesk.com", "NEWS_FEEDS", "/arc/outboundfeeds/rss/"),
}


class SourcesOverHttp:
    def __init__(self, sources: FakeSources | None = None) -> None:
        self.sources = sources or ReportSources()

    async def endpoint(self, request: Request) -> Response:
        prefix = request.path_params["source"]
        if prefix not in SOURCES:
            return Response(status_code=404)
        origin = SOURCES[prefix][0]
        url = f"{origin}/{request.path_params['path']}"
        if request.url.query:
            url += f"?{request.url.query}"
        upstream = httpx.Request(request.method, url, content=await request.body())
        reply = await self.sources.handler(upstream)
        headers = {
            k: v
            for k, v in reply.headers.items()
            if k.lower() in ("content-type", "retry-after", "x-ratelimit-remaining")
        }
        return Response(await reply.aread(), status_code=reply.status_code, headers=headers)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/{source}/{path:path}", self.endpoint, methods=["GET", "POST"])]
        )

    @staticmethod
    def env(base_url: str) -> dict[str, str]:
        return {
            setting: f"{base_url}/{prefix}{path}" for prefix, (_, setting, path) in SOURCES.items()
        }
