"""A strict local SendGrid v3 `/v3/mail/send` (batches) and a signer for its event webhook.

Refusals: a wrong key (401); no personalizations, more than 1,000, a personalization without
`to`, missing from/subject/content (400). Each accepted request is recorded once per
recipient with its substitutions applied and its headers. Cues: `429` / `error500` (next
request, nothing recorded), `timeout` (recorded, then no answer in time).

`WebhookSigner` signs event payloads the way SendGrid's Signed Event Webhook does (ECDSA
P-256 over timestamp + body, base64 DER signature; the public key is base64 DER).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_KEY = "SG.report-test-key-0123456789"


@dataclass
class Mail:
    to: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    at: float


@dataclass
class FakeSendGridBatch:
    hang_s: float = 30.0
    requests: int = 0
    mails: list[Mail] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    cue: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.mails if m.to == address.lower()]

    def _refuse(self, status: int, message: str) -> JSONResponse:
        self.refused.append((status, message))
        return JSONResponse({"errors": [{"message": message, "field": None}]}, status_code=status)

    async def endpoint(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return self._refuse(401, "The provided authorization grant is invalid")
        body = json.loads(await request.body() or b"{}")
        personalizations = body.get("personalizations") or []
        if not personalizations:
            return self._refuse(400, "The personalizations field is required")
        if len(personalizations) > 1000:
            return self._refuse(400, "The personalizations field must have 1000 or fewer items")
        if not body.get("from", {}).get("email") or not body.get("subject"):
            return self._refuse(400, "from and subject are required")
        contents = {c["type"]: c["value"] for c in body.get("content") or []}
        if not contents:
            return self._refuse(400, "content is required")
        if any(not p.get("to") for p in personalizations):
            return self._refuse(400, "each personalization needs to")
        with self.lock:
            cue, self.cue = self.cue, None
            if cue == "429":
                return self._refuse(429, "too many requests")
            if cue == "error500":
                return self._refuse(500, "internal error")
            self.requests += 1
            now = time.monotonic()
            for p in personalizations:
                subs = p.get("substitutions") or {}

                def apply(text: str, subs: dict[str, str] = subs) -> str:
                    for key, value in subs.items():
                        text = text.replace(key, value)
                    return text

                for to in p["to"]:
                    self.mails.append(
                        Mail(
                            to=to["email"].lower(),
                            subject=p.get("subject") or body["subject"],
                            html=apply(contents.get("text/html", "")),
                            text=apply(contents.get("text/plain", "")),
                            headers={**(body.get("headers") or {}), **(p.get("headers") or {})},
                            at=now,
                        )
                    )
        if cue == "timeout":
            await asyncio.sleep(self.hang_s)
        return Response(status_code=202, headers={"X-Message-Id": f"msg-{self.requests}"})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v3/mail/send", self.endpoint, methods=["POST"])])


class WebhookSigner:
    """Signs event webhook bodies like SendGrid (the private key never leaves the test)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        timestamp = timestamp or str(int(time.time()))
        signature = self._key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            "content-type": "application/json",
        }
