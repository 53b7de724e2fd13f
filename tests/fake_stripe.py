"""A local stand-in for the Stripe API (what stripe-python's api_base points at)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs


class FakeStripe(BaseHTTPRequestHandler):
    """Answers Checkout and portal session creation the way api.stripe.com does."""

    requests: ClassVar[list[tuple[str, dict[str, list[str]], dict[str, str]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        self.requests.append((self.path, parse_qs(body), dict(self.headers)))
        if self.path == "/v1/checkout/sessions":
            reply = {
                "id": "cs_test_1",
                "object": "checkout.session",
                "mode": "subscription",
                "url": "https://checkout.stripe.com/c/pay/cs_test_1",
            }
        elif self.path == "/v1/billing_portal/sessions":
            reply = {
                "id": "bps_1",
                "object": "billing_portal.session",
                "url": "https://billing.stripe.com/p/session/test_1",
            }
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", "req_test")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass
