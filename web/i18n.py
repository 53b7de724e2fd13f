"""The web channel's language: which one a request is answered in, the widget's strings, and
pages rendered from the one gettext catalogue (chainlens/locale).

A request's language is, in order: the turn's own (a chat route puts the detected language of
the message in the request scope, `set_turn_language`), the signed-in account's saved choice
(`Account.language`, set on the account page), the visitor's `cl_lang` cookie (the widget's
switch, for anonymous visitors too), the browser's `Accept-Language`, else English.

Pages are HTML files in web/static with `[[key]]` marks; each key names an English msgid in a
table here (marked with `N_`, so `pybabel extract` finds it), translated when the page is
served and HTML-escaped; `{name}` inside a message is filled with markup the route supplies
(links, numbers). Browser scripts get their strings as JSON (`GET /api/i18n/{lang}`, or a
`data-i18n` attribute on a page's body): no translations live in JavaScript.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from agent.language import hint_language
from chainlens.i18n import (
    DEFAULT_LANGUAGE,
    N_,
    Language,
    Localizer,
    as_language,
    localizer,
)

if TYPE_CHECKING:
    from fastapi import Request

    from billing.quota import QuotaDecision

LANG_COOKIE = "cl_lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
_TURN_LANGUAGE = "chainlens.language"  # request scope: the language a chat turn decided
_CALLER = "chainlens.caller"  # request scope: web.auth's resolved caller
_SESSION_COOKIE = "cl_session"  # web.auth.SESSION_COOKIE (not imported: no cycle)
# The choices offered on the account page and in the widget; None is "Automatic".
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "vi": "Tiếng Việt"}


# --- the request's language ------------------------------------------------------------------


def set_turn_language(request: Request, language: Language) -> None:
    """The language a chat turn decided (its message's own first): errors and refusals of this
    request use it too."""
    request.scope[_TURN_LANGUAGE] = language


def cookie_language(request: Request) -> Language | None:
    """The visitor's own choice in the `cl_lang` cookie (the widget's switch), if valid."""
    return as_language(request.cookies.get(LANG_COOKIE, "")[:16])


def accept_language(request: Request) -> str | None:
    """The browser's Accept-Language header (bounded), as a hint for agent.language."""
    value = request.headers.get("accept-language")
    return value[:200] if value else None


def caller_language(request: Request) -> Language | None:
    """The saved choice of the caller already resolved for this request (web.auth), if any."""
    caller = request.scope.get(_CALLER)
    account = getattr(caller, "account", None)
    return as_language(getattr(account, "language", None))


def saved_language(request: Request) -> Language | None:
    """The caller's choice: the account's saved language, else the `cl_lang` cookie."""
    return caller_language(request) or cookie_language(request)


def request_language(request: Request) -> Language:
    """The language to answer this request in, without touching a database: the turn's, the
    resolved caller's saved choice, the cookie, Accept-Language, else English."""
    turn = request.scope.get(_TURN_LANGUAGE)
    if isinstance(turn, str) and (lang := as_language(turn)):
        return lang
    return saved_language(request) or hint_language(accept_language(request)) or DEFAULT_LANGUAGE


async def account_choice(request: Request) -> Language | None:
    """The saved language of the caller's account: the resolved caller's, or for a session
    cookie whose caller is not resolved yet, read with one query (nothing is created and no
    cookie is set, so pages stay cheap)."""
    if request.scope.get(_CALLER) is not None:
        return caller_language(request)
    from web.auth import request_session

    session = request_session(request)
    if session is None:
        return None
    saved = await request.app.state.deps.db.fetchval(
        "SELECT u.language FROM identities i JOIN users u ON u.id = i.user_id"
        " WHERE i.identity = $1",
        session.identity,
    )
    return as_language(saved)


async def page_language(request: Request) -> Language:
    """A page's language: the account's saved choice, the cookie, Accept-Language, English."""
    return await account_choice(request) or request_language(request)


# --- the quota refusal ------------------------------------------------------------------------


def quota_refusal(decision: QuotaDecision, language: str | None) -> str:
    """The refusal of `decision` in words, in `language` (billing.quota's own wording)."""
    return decision.refusal_message(localizer(language))


# --- the widget's strings ---------------------------------------------------------------------

WIDGET_TEXT: dict[str, str] = {
    "greeting": N_("Ask me about any crypto project, or try one of these:"),
    "examples": N_("Research Uniswap|is the PEPE team legit?|ETH tokenomics?"),
    "open_chat": N_("Open {title} chat"),
    "chat_label": N_("{title} chat"),
    "new_chat": N_("New chat"),
    "new_chat_title": N_("Start a new conversation"),
    "close": N_("Close chat"),
    "upgrade_pro": N_("Upgrade to Pro"),
    "your_question": N_("Your question"),
    "placeholder": N_("Research Uniswap…"),
    "ask": N_("Ask"),
    "sign_out": N_("Sign out"),
    "signed_in_as": N_("Signed in as {email}"),
    "new_chat_failed": N_("Could not start a new chat. Please try again."),
    "sign_out_failed": N_("Could not sign out. Please try again."),
    "chart_alt": N_("Price chart"),
    "chart_alt_of": N_("Price chart of {project}"),
    "quota_left": N_("{remaining} of {limit} requests left today"),
    "upgrades_unavailable": N_("Upgrades are not available right now."),
    "pro_more": N_("Pro gives you many more questions every day."),
    "thinking": N_("Thinking…"),
    "partial": N_("(partial)"),
    "partial_title": N_("Some sources did not answer, or this is older stored data"),
    "went_wrong": N_("Something went wrong."),
    "connection_lost": N_("Connection lost. Please try again."),
    "tool_onchain": N_("Market & on-chain"),
    "tool_sentiment": N_("Sentiment"),
    "tool_tokenomics": N_("Tokenomics"),
    "tool_team": N_("Team"),
    "language": N_("Language"),
}


def translated(language: str, table: Mapping[str, str]) -> dict[str, str]:
    loc = localizer(language)
    return {key: loc._(message) for key, message in table.items()}


@cache
def widget_strings(language: Language) -> tuple[bytes, str]:
    """The widget's strings in `language` as a JSON body, and its ETag."""
    body = json.dumps(
        {
            "language": language,
            "strings": translated(language, WIDGET_TEXT),
            "languages": LANGUAGE_NAMES,
        },
        ensure_ascii=False,
        sort_keys=True,
    ).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


# --- pages ------------------------------------------------------------------------------------

_MARK = re.compile(r"\[\[(\w+)\]\]")


def render_page(
    template: str,
    language: Language,
    text: Mapping[str, str],
    markup: Mapping[str, str] | None = None,
    script_text: Mapping[str, str] | None = None,
) -> str:
    """Fill a page's `[[key]]` marks: `markup` values as they are (the route's own, already
    safe HTML), `text` keys translated and escaped, with `{name}` filled from `markup`.
    `[[lang]]` is the language code and `[[script_text]]` the escaped JSON of `script_text`
    (the page's scripts' strings, for a `data-i18n` attribute)."""
    loc = localizer(language)
    values: dict[str, str] = dict(markup or {})
    if clash := set(values) & {*text, "lang", "script_text"}:
        raise ValueError(f"page marks named twice: {sorted(clash)}")
    values["lang"] = language
    values["script_text"] = html.escape(
        json.dumps(translated(language, script_text or {}), ensure_ascii=False), quote=True
    )

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in values:
            return values[key]
        message = html.escape(loc._(text[key]), quote=False)
        return message.format_map(values) if "{" in message else message

    return _MARK.sub(fill, template)


def simple_page(language: Language, title: str, body: str, *, back: bool = True) -> str:
    """A short page (sign-in, report subscription): `title` is already translated; `body` is
    the route's HTML."""
    back_link = '<p><a href="/">← ChainLens</a></p>' if back else ""
    return (
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{html.escape(title)}</title><link rel="stylesheet" href="/static/page.css">'
        f"</head><body><main>{back_link}<h1>{html.escape(title)}</h1>"
        f"{body}</main></body></html>"
    )


def para(loc: Localizer, message: str, **markup: Any) -> str:
    """`<p>` with a translated, escaped message whose `{name}`s are filled with `markup`
    (safe HTML the caller built, e.g. an escaped address or a link)."""
    return "<p>" + html.escape(loc._(message), quote=False).format(**markup) + "</p>"
