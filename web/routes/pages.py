"""The demo page, the widget's script and styles, and static assets (with cache headers)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from web.errors import ApiError

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_TYPES = {".js": "application/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8"}


@lru_cache(maxsize=32)
def _asset(name: str) -> tuple[bytes, str]:
    body = (STATIC_DIR / name).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def _serve(request: Request, name: str, max_age: int) -> Response:
    body, etag = _asset(name)
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=_TYPES[Path(name).suffix], headers=headers)


@router.get("/widget.js")
async def widget_js(request: Request) -> Response:
    return _serve(request, "widget.js", 3600)


@router.get("/widget.css")
async def widget_css(request: Request) -> Response:
    return _serve(request, "widget.css", 3600)


@router.get("/static/{name}")
async def static_asset(name: str, request: Request) -> Response:
    if name not in ("page.css", "account.js", "pricing.js", "account_reports.js"):
        raise ApiError(404, "not_found", "Not Found")
    return _serve(request, name, 3600)


@router.get("/", response_class=HTMLResponse)
async def demo_page(request: Request) -> HTMLResponse:
    body, _ = _asset("index.html")
    base = str(request.app.state.deps.settings.public_base_url).rstrip("/")
    return HTMLResponse(body.decode().replace("{base}", base),
                        headers={"Cache-Control": "no-cache"})
