"""CoinGecko `/simple/price` as a strict fake for the alert tests and bench (the rest of the
data sources as in tests/tools_fakes.py). Prices are set per coin; a coin removed stops
reporting (CoinGecko leaves unknown ids out of the body)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from tests.fake_delivery_sources import ReportSources
from tests.tools_fakes import json_response


@dataclass
class PriceSources(ReportSources):
    prices: dict[str, tuple[float, float | None, float]] = field(default_factory=dict)
    price_calls: list[list[str]] = field(default_factory=list)

    def set(
        self, coin_id: str, price: float, change: float | None = 0.0, at: float | None = None
    ) -> None:
        """The coin's price now (or at `at`, a unix time): each set is a new CoinGecko update."""
        stamp = float(int(at if at is not None else time.time()))
        old = self.prices.get(coin_id)
        if old is not None and stamp <= old[2]:
            stamp = old[2] + 1  # CoinGecko's last_updated_at only moves forward
        self.prices[coin_id] = (price, change, stamp)

    def route(self, request: httpx.Request) -> str:
        if "coingecko" in request.url.host and request.url.path.endswith("/simple/price"):
            return "coingecko:simple_price"
        return super().route(request)

    def default(self, route: str, request: httpx.Request) -> httpx.Response:
        if route != "coingecko:simple_price":
            return super().default(route, request)
        params = request.url.params
        ids = [i for i in params.get("ids", "").split(",") if i]
        if not ids or params.get("vs_currencies") != "usd":
            return json_response({"error": "Missing parameter ids or vs_currencies"}, 400)
        self.price_calls.append(ids)
        body: dict[str, dict[str, float | None]] = {}
        for coin_id in ids:
            if coin_id not in self.prices:
                continue  # unknown or delisted: simply absent
            price, change, stamp = self.prices[coin_id]
            row: dict[str, float | None] = {"usd": price}
            if params.get("include_24hr_change") == "true":
                row["usd_24h_change"] = change
            if params.get("include_last_updated_at") == "true":
                row["last_updated_at"] = int(stamp)
            body[coin_id] = row
        return json_response(body)
