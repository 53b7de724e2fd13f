"""A local stand-in for SendGrid's v3 API (what the sendgrid client's `host` points at)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

API_KEY = "SG.test-key-0123456789"


class FakeSendGrid(BaseHTTPRequestHandler):
    """Accepts POST /v3/mail/send with the right key (202) and records each message."""

    messages: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path != "/v3/mail/send":
            self.send_response(404)
        elif self.headers.get("authorization") != f"Bearer {API_KEY}":
            self.send_response(401)
        else:
            self.messages.append(json.loads(body))
            self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass
