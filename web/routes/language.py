"""Languages on the web: the widget's strings from the catalogue, and the language choice.

`GET /api/i18n/{lang}` serves the widget's strings (public, cached, with an ETag; any site
embedding the widget may read them). `PUT /api/account/language` saves a signed-in account's
choice ('en', 'vi', or null / 'auto' for automatic); `PUT /api/language` is the widget's
switch: it keeps the choice in the `cl_lang` cookie, for anonymous visitors too, and saves it
on the account when someone is signed in. Both are same-origin JSON requests (a cross-site
Origin is refused by WidgetCORSMiddleware, like every other account change).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from billing.accounts import set_language
from chainlens.deps import Deps
from chainlens.i18n import LANGUAGES, N_, Language, as_language
from web.auth import Caller, _cookie_flags, current_caller
from web.errors import ApiError, ErrorResponse
from web.i18n import LANG_COOKIE, LANG_COOKIE_MAX_AGE, widget_strings

router = APIRouter(tags=["account"])
_STRINGS_MAX_AGE = 3600
_AUTOMATIC = ("auto", "automatic", "")
_UNSUPPORTED = N_("Unsupported language: choose en (English), vi (Tiếng Việt) or auto.")
_SIGN_IN = N_("Sign in to save a language on your account.")


class LanguageChoice(BaseModel):
    language: str | None = Field(
        default=None,
        max_length=16,
        description="'en', 'vi', or null / 'auto' for automatic",
        examples=["vi"],
    )


class LanguageOut(BaseModel):
    language: Language | None  # None: automatic (each message's own, then the browser's)
    saved: bool  # stored on the account (not only in this browser's cookie)


class WidgetStrings(BaseModel):
    language: Language
    strings: dict[str, str]
    languages: dict[str, str]  # the choices, each named in its own language


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


def _choice(body: LanguageChoice) -> Language | None:
    value = (body.language or "").strip().lower()
    if value in _AUTOMATIC:
        return None
    language = as_language(value)
    if language is None or value != language:
        raise ApiError(
            400, "unsupported_language", _UNSUPPORTED, details={"choices": [*LANGUAGES, "auto"]}
        )
    return language


def _remember(response: Response, request: Request, language: Language | None) -> None:
    https, samesite = _cookie_flags(_deps(request).settings)
    if language is None:
        response.delete_cookie(
            LANG_COOKIE, path="/", httponly=True, samesite=samesite, secure=https
        )
    else:
        response.set_cookie(
            LANG_COOKIE,
            language,
            max_age=LANG_COOKIE_MAX_AGE,
            path="/",
            httponly=True,
            samesite=samesite,
            secure=https,
        )


@router.get(
    "/api/i18n/{lang}",
    response_model=WidgetStrings,
    responses={304: {"description": "not modified"}, 404: {"model": ErrorResponse}},
)
async def strings(request: Request, lang: Annotated[str, Path(max_length=16)]) -> Response:
    """The chat widget's strings in one language (`en`, `vi`) from the message catalogue."""
    language = as_language(lang)
    if language is None or lang != language:
        raise ApiError(
            404, "unsupported_language", _UNSUPPORTED, details={"choices": list(LANGUAGES)}
        )
    body, etag = widget_strings(language)
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={_STRINGS_MAX_AGE}",
        # Public text without credentials: a widget embedded on any site may read it.
        "Access-Control-Allow-Origin": "*",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.put(
    "/api/account/language",
    response_model=LanguageOut,
    responses={400: {"model": ErrorResponse}, 401: {"model": ErrorResponse}},
)
async def account_language(
    body: LanguageChoice,
    request: Request,
    response: Response,
    caller: Annotated[Caller, Depends(current_caller)],
) -> LanguageOut:
    """Save the signed-in account's language: 'en', 'vi', or null / 'auto' (automatic)."""
    language = _choice(body)
    if caller.anonymous:
        raise ApiError(401, "sign_in_required", _SIGN_IN)
    await set_language(_deps(request), caller.account.id, language)
    _remember(response, request, language)
    return LanguageOut(language=language, saved=True)


@router.put("/api/language", response_model=LanguageOut, responses={400: {"model": ErrorResponse}})
async def browser_language(
    body: LanguageChoice,
    request: Request,
    response: Response,
    caller: Annotated[Caller, Depends(current_caller)],
) -> LanguageOut:
    """The widget's switch: this browser's language (a cookie), and the account's when signed
    in."""
    language = _choice(body)
    saved = not caller.anonymous and caller.via == "session"
    if saved:
        await set_language(_deps(request), caller.account.id, language)
    _remember(response, request, language)
    return LanguageOut(language=language, saved=saved)
