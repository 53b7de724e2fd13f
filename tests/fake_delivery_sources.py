"""The data APIs for report tests: tests/tools_fakes.FakeSources plus CoinGecko's `/global`,
behind a transport that lets loopback requests (the delivery fakes) through for real."""

from __future__ import annotations

import httpx

from tests.tools_fakes import FakeSources, json_response

GLOBAL_BODY = {
    "data": {
        "active_cryptocurrencies": 13000,
        "total_market_cap": {"usd": 2_400_000_000_000.0, "btc": 39_000_000.0},
        "market_cap_change_percentage_24h_usd": -1.25,
        "market_cap_percentage": {"btc": 52.1, "eth": 17.3},
        "updated_at": 1788825600,
    }
}


class ReportSources(FakeSources):
    def route(self, request: httpx.Request) -> str:
        if "coingecko" in request.url.host and request.url.path.endswith("/global"):
            return "coingecko:global"
        return super().route(request)

    def default(self, route: str, request: httpx.Request) -> httpx.Response:
        if route == "coingecko:global":
            return json_response(GLOBAL_BODY)
        return super().default(route, request)


class LoopbackOrFake(httpx.AsyncBaseTransport):
    """Requests to 127.0.0.1 go over the network to the local fakes; the rest to `fake`."""

    def __init__(self, fake: httpx.AsyncBaseTransport) -> None:
        self.fake = fake
        self.real = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=200))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host in ("127.0.0.1", "localhost"):
            return await self.real.handle_async_request(request)
        return await self.fake.handle_async_request(request)

    async def aclose(self) -> None:
        await self.real.aclose()
