"""The demo page, the widget assets and the security headers."""

from __future__ import annotations

import httpx

from chainlens.deps import Deps
from web.app import create_app


def client_for(deps: Deps) -> httpx.AsyncClient:
    app = create_app(deps.settings, deps=deps)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_demo_page_embeds_the_widget(deps: Deps) -> None:
    async with client_for(deps) as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert '<script src="/widget.js"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"


async def test_widget_is_served_with_cache_headers_and_etag(deps: Deps) -> None:
    async with client_for(deps) as client:
        script = await client.get("/widget.js")
        again = await client.get("/widget.js", headers={"If-None-Match": script.headers["etag"]})
        css = await client.get("/widget.css")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert script.headers["cache-control"] == "public, max-age=3600"
    assert "attachShadow" in script.text
    assert again.status_code == 304
    assert css.status_code == 200 and ".cl-bubble" in css.text


async def test_errors_have_one_json_shape(deps: Deps) -> None:
    async with client_for(deps) as client:
        missing = await client.get("/no/such/page")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "Not Found", "details": None}}
