"""The demo page, the widget's script and styles, and static assets (with cache headers)."""

from __future__ import annotations

import hashlib
import html
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from chainlens.deps import Deps
from chainlens.i18n import N_, localizer
from web.errors import ApiError
from web.i18n import page_language, render_page

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_TYPES = {
    ".js": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}
_PUBLIC_ASSETS = (
    "page.css",
    "account.js",
    "pricing.js",
    "index.js",
    "favicon.svg",
    "i18n.js",
    "account_reports.js",
    "account_watch.js",
)


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


def public_base(request: Request) -> str:
    """Where browsers reach this server: PUBLIC_BASE_URL when it was set, else this request's
    own scheme, host and port (so the embed snippet is right on any host and port)."""
    deps: Deps = request.app.state.deps
    if "public_base_url" in deps.settings.model_fields_set:
        return str(deps.settings.public_base_url).rstrip("/")
    return str(request.base_url).rstrip("/")


@router.get("/widget.js")
async def widget_js(request: Request) -> Response:
    return _serve(request, "widget.js", 3600)


@router.get("/widget.css")
async def widget_css(request: Request) -> Response:
    return _serve(request, "widget.css", 3600)


@router.get("/favicon.svg")
@router.get("/favicon.ico")
async def favicon(request: Request) -> Response:
    # Browsers ask for /favicon.ico on their own; an SVG served there is shown all the same.
    return _serve(request, "favicon.svg", 86400)


@router.get("/static/{name}")
async def static_asset(name: str, request: Request) -> Response:
    if name not in _PUBLIC_ASSETS:
        raise ApiError(404, "not_found", "Not Found")
    return _serve(request, name, 3600)


DEMO_TEXT: dict[str, str] = {
    "title": N_("ChainLens — crypto research in chat"),
    "lead": N_(
        "Research any crypto project in chat: market and on-chain data, social sentiment, "
        "tokenomics and team — from CoinGecko, DefiLlama, GoPlus, GitHub and the news, "
        "with sources."
    ),
    "try_asking": N_("Try asking"),
    "example_research": N_("Research Uniswap"),
    "example_team": N_("is the PEPE team legit?"),
    "example_tokenomics": N_("ETH tokenomics?"),
    "example_sentiment": N_("what's the crowd saying about $ARB"),
    "embed_intro": N_(
        "The chat bubble in the corner is the same widget any site can add with one tag:"
    ),
    "free_line": N_("Free: {free_daily} questions a day."),
    "account_line": N_(
        "{account_link} shows your usage, API keys and how to link Telegram or "
        "Discord so every channel shares one quota."
    ),
    "your_account": N_("Your account"),
    "plans": N_("Plans"),
    "not_advice": N_(
        "Not financial advice. Data can be delayed; every answer says how old its data is."
    ),
}


def page_response(page: str) -> HTMLResponse:
    """A page in the caller's language: never shared between callers by a cache."""
    return HTMLResponse(
        page, headers={"Cache-Control": "no-cache", "Vary": "Cookie, Accept-Language"}
    )


@router.get("/", response_class=HTMLResponse)
async def demo_page(request: Request) -> HTMLResponse:
    body, _ = _asset("index.html")
    deps: Deps = request.app.state.deps
    free = deps.settings.limits_for("free")
    language = await page_language(request)
    loc = localizer(language)
    account_link = f'<a href="/account">{html.escape(loc._(DEMO_TEXT["your_account"]))}</a>'
    page = render_page(
        body.decode(),
        language,
        DEMO_TEXT,
        {
            "base": html.escape(public_base(request)),
            "free_daily": loc.number(free.daily),
            "account_link": account_link,
        },
    )
    return page_response(page)
