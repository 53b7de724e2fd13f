"""Credentials never follow a redirect to another origin (real HTTP servers on loopback)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest
from pydantic import AnyHttpUrl, SecretStr

from chainlens.deps import Deps, make_http_client
from tests.fake_http import running_http_server
from tests.tools_fakes import fast_http

CG_KEY = "CG-demo-key-must-stay-home"
GH_TOKEN = "ghp_token_must_stay_home"


class Recorder(BaseHTTPRequestHandler):
    """The other origin: records what it was sent, answers like CoinGecko/GitHub would."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = json.dumps({"coins": [{"item": {"id": "uniswap"}}], "full_name": "x/y"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def redirector(target: str) -> type[BaseHTTPRequestHandler]:
    class Redirect(BaseHTTPRequestHandler):
        seen: ClassVar[list[dict[str, str]]] = []

        def do_GET(self) -> None:
            Redirect.seen.append({k.lower(): v for k, v in self.headers.items()})
            if self.path.startswith("/same/"):
                location = self.path.replace("/same/", "/final/", 1)  # same origin
            elif self.path.startswith("/final/"):
                body = b'{"coins": [{"item": {"id": "aave"}}]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            else:
                location = target + self.path
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Redirect


@pytest.fixture
async def real_http_deps(deps: Deps) -> AsyncIterator[Deps]:
    settings = deps.settings.model_copy(
        update={"coingecko_api_key": SecretStr(CG_KEY), "github_token": SecretStr(GH_TOKEN)}
    )
    client = make_http_client(settings)  # the real transport, as in production
    yield fast_http(dataclasses.replace(deps, settings=settings, http=client))
    await client.aclose()


async def test_coingecko_key_is_not_sent_to_another_origin(real_http_deps: Deps) -> None:
    from tools.sources.coingecko import fetch_trending

    Recorder.seen.clear()
    with running_http_server(Recorder) as other:
        # 127.0.0.1 redirects to localhost: another origin (host differs), another port too.
        other_origin = other.replace("127.0.0.1", "localhost")
        handler = redirector(other_origin)
        with running_http_server(handler) as first:
            settings = real_http_deps.settings.model_copy(
                update={"coingecko_base_url": AnyHttpUrl(first)}
            )
            deps = dataclasses.replace(real_http_deps, settings=settings)
            assert await fetch_trending(deps) == ["uniswap"]
    assert handler.seen[0]["x-cg-demo-api-key"] == CG_KEY  # its own host gets it
    [redirected] = Recorder.seen
    assert "x-cg-demo-api-key" not in redirected
    assert CG_KEY not in json.dumps(redirected)
    assert redirected["user-agent"].startswith("ChainLens/")


async def test_github_token_is_not_sent_to_another_port(real_http_deps: Deps) -> None:
    from tools.sources.github import fetch_repo

    Recorder.seen.clear()
    with running_http_server(Recorder) as other:  # same host 127.0.0.1, another port
        handler = redirector(other)
        with running_http_server(handler) as first:
            settings = real_http_deps.settings.model_copy(
                update={"github_api_url": AnyHttpUrl(first)}
            )
            deps = dataclasses.replace(real_http_deps, settings=settings)
            await fetch_repo(deps, "x/y")
    assert handler.seen[0]["authorization"] == f"Bearer {GH_TOKEN}"
    assert all(GH_TOKEN not in json.dumps(headers) for headers in Recorder.seen)


async def test_a_same_origin_redirect_keeps_the_key(real_http_deps: Deps) -> None:
    from tools.http import get_json

    handler = redirector("http://unused.invalid")
    with running_http_server(handler) as first:
        body = await get_json(
            real_http_deps,
            f"{first}/same/trending",
            source="CoinGecko",
            headers={"x-cg-demo-api-key": CG_KEY},
        )
    assert body == {"coins": [{"item": {"id": "aave"}}]}
    assert [h.get("x-cg-demo-api-key") for h in handler.seen] == [CG_KEY, CG_KEY]
