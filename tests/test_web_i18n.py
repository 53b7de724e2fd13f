"""The web channel in English and Vietnamese from the one catalogue: pages, the widget's
strings, the language choice, the language of chat answers and of the quota refusal."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from billing.accounts import account_for_identity, set_language
from chainlens.deps import Deps
from chainlens.i18n import localizer
from chainlens.settings import TierLimits
from tests.conftest import REPO_ROOT, AppFactory
from tests.tools_fakes import FakeSources, fast_http
from web.app import create_app
from web.auth import SESSION_COOKIE, session_cookie_value
from web.i18n import LANG_COOKIE, WIDGET_TEXT
from web.routes.account import (
    ACCOUNT_SCRIPT_TEXT,
    ACCOUNT_TEXT,
    PRICING_SCRIPT_TEXT,
    PRICING_TEXT,
)
from web.routes.pages import DEMO_TEXT

STATIC = REPO_ROOT / "web" / "static"
VI = {"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.8"}
EN = {"Accept-Language": "en-US,en;q=0.9"}


@pytest.fixture
def chat_deps(deps: Deps, with_http: Any, sources: FakeSources) -> Deps:
    """Deps over the fake data sources; free tier 2 a day."""
    limits = dict(deps.settings.tier_limits)
    limits["free"] = TierLimits(daily=2, minute=10)
    settings = deps.settings.model_copy(update={"tier_limits": limits})
    fast: Deps = fast_http(
        with_http(dataclasses.replace(deps, settings=settings), sources.transport())
    )
    return fast


@pytest.fixture
async def client(chat_deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(chat_deps.settings, deps=chat_deps)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.21", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def sign_in(
    client: httpx.AsyncClient, deps: Deps, email: str, language: str | None = None
) -> int:
    account = await account_for_identity(deps, f"web:{email}")
    if language is not None:
        await set_language(deps, account.id, language)
    client.cookies.set(
        SESSION_COOKIE,
        session_cookie_value(deps.settings, f"web:{email}"),
        domain="test.local",
        path="/",
    )
    return account.id


def final_answer(stream: httpx.Response) -> str:
    finals = [
        json.loads(m.group(1)) for m in re.finditer(r"event: final\ndata: (.*)\n", stream.text)
    ]
    assert len(finals) == 1, stream.text[:800]
    answer: str = finals[0]["response"]
    return answer


def lang_of(page: str) -> str:
    found = re.search(r'<html lang="(\w+)"', page)
    assert found, page[:200]
    return found.group(1)


def script_text(page: str) -> dict[str, str]:
    found = re.search(r'data-i18n="([^"]*)"', page)
    assert found, page[:300]
    data: dict[str, str] = json.loads(html.unescape(found.group(1)))
    return data


# --- pages -------------------------------------------------------------------------------------


async def test_accept_language_vi_gives_vietnamese_pages(client: httpx.AsyncClient) -> None:
    vi = localizer("vi")
    demo = await client.get("/", headers=VI)
    account = await client.get("/account", headers=VI)
    pricing = await client.get("/pricing", headers=VI)
    for page in (demo, account, pricing):
        assert page.status_code == 200
        assert lang_of(page.text) == "vi"
        shown = re.sub(r'data-i18n="[^"]*"', "", page.text)
        assert "[[" not in shown and "{" not in shown
        assert "Accept-Language" in page.headers["vary"]
    assert "Thử hỏi" in demo.text and "Phân tích Uniswap" in demo.text
    assert 'data-lang="vi"' in demo.text  # the demo's widget speaks the page's language
    assert "Không phải lời khuyên tài chính" in demo.text
    assert "Try asking" not in demo.text
    assert html.escape(vi._("Plan and usage")) in account.text
    assert "Tiếng Việt" in account.text and "Tự động" in account.text
    assert script_text(account.text)["revoke"] == "Thu hồi"
    assert "Lượt hỏi mỗi ngày" in pricing.text and "Doanh nghiệp" in pricing.text
    assert script_text(pricing.text)["unavailable"] == vi._("Upgrades are not available right now.")

    english = await client.get("/", headers=EN)
    assert lang_of(english.text) == "en" and "Try asking" in english.text
    plain = await client.get("/pricing")
    assert lang_of(plain.text) == "en" and "Requests per day" in plain.text


async def test_pages_fill_every_mark_in_both_languages(client: httpx.AsyncClient) -> None:
    for path in ("/", "/account", "/pricing", "/reports"):
        for headers in (EN, VI):
            page = await client.get(path, headers=headers)
            assert page.status_code == 200, (path, page.text[:300])
            assert "[[" not in page.text and "]]" not in page.text, path
    report_index = await client.get("/reports", headers=VI)
    assert "Nhận báo cáo mỗi sáng" in report_index.text and lang_of(report_index.text) == "vi"
    assert "<h2>Lưu trữ</h2>" in report_index.text and "Archive" not in report_index.text


async def test_report_subscription_pages_follow_the_language(client: httpx.AsyncClient) -> None:
    bad = await client.post("/reports/subscribe", data={"email": "not-an-address"}, headers=VI)
    assert bad.status_code == 400 and lang_of(bad.text) == "vi"
    assert "Đây có vẻ không phải địa chỉ e-mail" in bad.text
    invalid = await client.get("/reports/unsubscribe", params={"token": "x"}, headers=VI)
    assert invalid.status_code == 400
    assert "Liên kết không hợp lệ" in invalid.text
    assert "liên kết hủy đăng ký này không hợp lệ" in invalid.text
    english = await client.get("/reports/unsubscribe", params={"token": "x"})
    assert "this unsubscribe link is not valid" in english.text


async def test_signin_page_follows_the_language(client: httpx.AsyncClient) -> None:
    page = await client.get("/auth/verify", params={"token": "nope"}, headers=VI)
    assert page.status_code == 400 and lang_of(page.text) == "vi"
    assert "Liên kết đăng nhập này không hợp lệ" in page.text


# --- the widget's strings ------------------------------------------------------------------------


async def test_widget_strings_have_every_key_in_both_languages(client: httpx.AsyncClient) -> None:
    en = await client.get("/api/i18n/en")
    vi = await client.get("/api/i18n/vi")
    assert en.status_code == vi.status_code == 200
    assert en.json()["language"] == "en" and vi.json()["language"] == "vi"
    assert set(en.json()["strings"]) == set(vi.json()["strings"]) == set(WIDGET_TEXT)
    assert en.json()["strings"] == WIDGET_TEXT
    for key, english in WIDGET_TEXT.items():
        assert vi.json()["strings"][key].strip(), key
        assert sorted(re.findall(r"\{\w+\}", vi.json()["strings"][key])) == sorted(
            re.findall(r"\{\w+\}", english)
        ), key
    assert vi.json()["strings"]["new_chat"] == "Chat mới"
    assert vi.json()["strings"]["tool_team"] == "Đội ngũ"
    assert len(vi.json()["strings"]["examples"].split("|")) == 3
    assert vi.json()["languages"] == {"en": "English", "vi": "Tiếng Việt"}
    # cached: public, with an ETag; any site embedding the widget may read it
    assert vi.headers["cache-control"].startswith("public, max-age=")
    assert vi.headers["access-control-allow-origin"] == "*"
    again = await client.get("/api/i18n/vi", headers={"If-None-Match": vi.headers["etag"]})
    assert again.status_code == 304
    assert en.headers["etag"] != vi.headers["etag"]
    assert (await client.get("/api/i18n/fr")).status_code == 404
    assert (await client.get("/api/i18n/vi-VN")).status_code == 404


def test_scripts_use_only_catalogue_keys() -> None:
    """Every string key the scripts ask for exists in the table the server sends them, and
    every `[[mark]]` of a page is a catalogue key or a value its route supplies."""
    widget = (STATIC / "widget.js").read_text()
    used = set(re.findall(r'\bt\("(\w+)"', widget)) | {
        "tool_" + t for t in ("onchain", "sentiment", "tokenomics", "team")
    }
    assert used and used <= set(WIDGET_TEXT), used - set(WIDGET_TEXT)
    assert set(WIDGET_TEXT) <= used, set(WIDGET_TEXT) - used  # no key left unused
    for name in ("account.js", "account_reports.js", "account_watch.js"):
        keys = set(re.findall(r'\bt\("(\w+)"', (STATIC / name).read_text()))
        assert keys <= set(ACCOUNT_SCRIPT_TEXT), (name, keys - set(ACCOUNT_SCRIPT_TEXT))
    pricing_keys = set(re.findall(r'\bt\("(\w+)"', (STATIC / "pricing.js").read_text()))
    assert pricing_keys <= set(PRICING_SCRIPT_TEXT)
    supplied = {
        "lang",
        "script_text",
        "base",
        "free_daily",
        "account_link",
        "lang_saved",
        "email",
        "command",
        "archive_link",
        "alpha",
        "watch_command",
        "alert_command",
        *(
            f"{tier}_{window}"
            for tier in ("free", "pro", "enterprise")
            for window in ("daily", "minute")
        ),
    }
    for template, table in (
        ("index.html", DEMO_TEXT),
        ("account.html", ACCOUNT_TEXT),
        ("pricing.html", PRICING_TEXT),
    ):
        marks = set(re.findall(r"\[\[(\w+)\]\]", (STATIC / template).read_text()))
        assert marks <= set(table) | supplied, (template, marks - set(table) - supplied)


async def test_widget_language_follows_accept_language_then_the_cookie(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/chat/history", headers=VI)).json()["language"] == "vi"
    assert (await client.get("/api/chat/history", headers=EN)).json()["language"] == "en"
    # the widget's switch, for an anonymous visitor: a cookie, not an account change
    switched = await client.put("/api/language", json={"language": "en"}, headers=VI)
    assert switched.status_code == 200 and switched.json() == {"language": "en", "saved": False}
    assert LANG_COOKIE in switched.headers["set-cookie"]
    assert (await client.get("/api/chat/history", headers=VI)).json()["language"] == "en"
    assert lang_of((await client.get("/", headers=VI)).text) == "en"
    automatic = await client.put("/api/language", json={"language": "auto"}, headers=VI)
    assert automatic.json() == {"language": None, "saved": False}
    assert (await client.get("/api/chat/history", headers=VI)).json()["language"] == "vi"


# --- the language choice -------------------------------------------------------------------------


async def test_language_endpoint_needs_sign_in_and_valid_input(
    client: httpx.AsyncClient, chat_deps: Deps
) -> None:
    anonymous = await client.put("/api/account/language", json={"language": "vi"}, headers=VI)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "sign_in_required"
    assert "đăng nhập" in anonymous.json()["error"]["message"]  # in the caller's language

    account_id = await sign_in(client, chat_deps, "lang@example.com")
    for bad in ("fr", "vi-VN", "english", 3):
        refused = await client.put("/api/account/language", json={"language": bad})
        assert refused.status_code in (400, 422), bad
        if isinstance(bad, str):
            assert refused.status_code == 400
            assert refused.json()["error"]["code"] == "unsupported_language"
    assert (await account_for_identity(chat_deps, "web:lang@example.com")).language is None

    cross_site = await client.put(
        "/api/account/language", json={"language": "vi"}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    assert (await account_for_identity(chat_deps, "web:lang@example.com")).language is None

    saved = await client.put("/api/account/language", json={"language": "vi"})
    assert saved.status_code == 200 and saved.json() == {"language": "vi", "saved": True}
    account = await account_for_identity(chat_deps, "web:lang@example.com")
    assert account.id == account_id and account.language == "vi"
    assert (await client.get("/api/account")).json()["language"] == "vi"
    # reflected on reload, whatever the browser prefers
    page = await client.get("/account", headers=EN)
    assert lang_of(page.text) == "vi" and 'data-current="vi"' in page.text

    cleared = await client.put("/api/account/language", json={"language": None})
    assert cleared.json() == {"language": None, "saved": True}
    assert (await account_for_identity(chat_deps, "web:lang@example.com")).language is None
    page = await client.get("/account", headers=EN)
    assert lang_of(page.text) == "en" and 'data-current="auto"' in page.text


async def test_saved_choice_wins_over_accept_language(
    client: httpx.AsyncClient, chat_deps: Deps
) -> None:
    await sign_in(client, chat_deps, "saved-en@example.com", language="en")
    for path in ("/", "/account", "/pricing"):
        assert lang_of((await client.get(path, headers=VI)).text) == "en", path
    assert (await client.get("/api/chat/history", headers=VI)).json()["language"] == "en"
    # the widget's switch saves on the account when signed in
    switched = await client.put("/api/language", json={"language": "vi"}, headers=EN)
    assert switched.json() == {"language": "vi", "saved": True}
    assert (await account_for_identity(chat_deps, "web:saved-en@example.com")).language == "vi"
    client.cookies.delete(LANG_COOKIE)  # the account's choice, not only this browser's cookie
    assert lang_of((await client.get("/pricing", headers=EN)).text) == "vi"


# --- chat ----------------------------------------------------------------------------------------


async def test_message_language_wins_over_the_saved_choice(
    client: httpx.AsyncClient, chat_deps: Deps
) -> None:
    await sign_in(client, chat_deps, "vi-user@example.com", language="vi")
    english = await client.post(
        "/api/chat/stream", headers=VI, json={"message": "Research Uniswap"}
    )
    assert english.status_code == 200
    answer = final_answer(english)
    assert "not financial advice" in answer.lower(), answer[-400:]
    assert "lời khuyên tài chính" not in answer.lower()

    vietnamese = await client.post(
        "/api/chat/query", headers=EN, json={"message": "Phân tích Uniswap"}
    )
    assert vietnamese.status_code == 200, vietnamese.text
    assert "lời khuyên tài chính" in vietnamese.json()["response"].lower()


async def test_no_language_in_the_message_follows_the_saved_choice(
    client: httpx.AsyncClient, chat_deps: Deps
) -> None:
    await sign_in(client, chat_deps, "vi-pref@example.com", language="vi")
    answered = await client.post("/api/chat/query", headers=EN, json={"message": "$UNI"})
    assert answered.status_code == 200, answered.text
    assert "lời khuyên tài chính" in answered.json()["response"].lower()


async def test_quota_refusal_in_vietnamese_on_the_web(client: httpx.AsyncClient) -> None:
    for _ in range(2):
        assert (
            await client.post("/api/chat/query", headers=VI, json={"message": "Phân tích Uniswap"})
        ).status_code == 200
    refused = await client.post(
        "/api/chat/stream", headers=VI, json={"message": "Giá UNI hôm nay bao nhiêu?"}
    )
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["message"].startswith("Bạn đã dùng hết 2 lượt hỏi"), error["message"]
    assert "/pricing" in error["message"] and error["details"]["window"] == "day"
    # the same refusal to an English question is in English, whatever the browser says
    english = await client.post(
        "/api/chat/query", headers=VI, json={"message": "What is the price of UNI today?"}
    )
    assert english.status_code == 429
    assert english.json()["error"]["message"].startswith(
        "You have used all 2 requests for today on the free plan"
    )


async def test_errors_are_in_the_callers_language(client: httpx.AsyncClient) -> None:
    too_long = await client.post(
        "/api/chat/query", headers=VI, json={"message": "phân tích " * 300}
    )
    assert too_long.status_code == 413
    assert too_long.json()["error"]["message"].startswith("Tin nhắn của bạn dài")
    invalid = await client.post("/api/chat/query", headers=VI, json={"message": ""})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["message"] == "Yêu cầu không hợp lệ."
    missing = await client.get("/no/such/page", headers=VI)
    assert missing.json()["error"] == {
        "code": "not_found",
        "message": "Không tìm thấy",
        "details": None,
    }
    assert (await client.get("/no/such/page")).json()["error"]["message"] == "Not Found"


async def test_edge_refusals_follow_the_callers_language(make_client: AppFactory) -> None:
    """413 and the cross-site 403 are answered before any route, in the caller's language."""
    async with make_client() as client:
        big = "x" * 2_000_000
        en = await client.post(
            "/api/chat/query", content=big, headers={"content-type": "application/json"}
        )
        vi = await client.post(
            "/api/chat/query",
            content=big,
            headers={"content-type": "application/json", "accept-language": "vi-VN,vi;q=0.9"},
        )
        assert (en.status_code, vi.status_code) == (413, 413)
        assert en.json()["error"]["message"].startswith("The request body is larger than")
        assert vi.json()["error"]["message"].startswith("Nội dung yêu cầu lớn hơn")
        cross = await client.post(
            "/api/account/keys",
            json={},
            headers={"origin": "https://evil.example", "accept-language": "vi"},
        )
        assert cross.status_code == 403
        assert cross.json()["error"]["message"] == "Ở đây không cho phép yêu cầu từ trang web khác."
