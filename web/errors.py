"""One JSON error shape for every failure: {"error": {"code", "message", "details"}}.

Routes raise `ApiError` (or let FastAPI raise validation errors); nothing else turns into a
response, and no stack trace ever reaches a client. A dependency that cannot be reached
(PostgreSQL down or restarting, a pool that cannot hand out a connection in time, Redis
gone where it is not optional) is a 503 with `Retry-After` and the dependency named, not a
500: the request did nothing, so retrying it later is safe.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from chainlens.i18n import N_, localizer
from chainlens.outages import POSTGRES_DOWN, postgres_down
from web.i18n import request_language

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
_REDIS_DOWN: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)
_UNAVAILABLE = {
    "database": N_(
        "Our database is unreachable right now, so this request was not carried out. "
        "Please try again in a few seconds."
    ),
    "redis": N_(
        "Our cache is unreachable right now, so this request was not carried out. "
        "Please try again in a few seconds."
    ),
}
_UNAVAILABLE_OTHER = N_(
    "A service we depend on is unreachable right now, so this request was "
    "not carried out. Please try again in a few seconds."
)
# Messages of the handlers below (translated into the request's language like ApiError's).
_INVALID = N_("The request is not valid.")
_BAD_TEXT = N_("The request contains characters we cannot store (such as NUL).")
_INTERNAL = N_("Something went wrong on our side.")
_NOT_FOUND = N_("Not Found")  # Starlette's 404 detail, translated by `_http` below


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """An error answer. `message` is English; when it is a catalogue message (marked with
    `N_` where it is written) people read it in the request's language (web.i18n)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Any | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


# Documented on every operation: any of them can answer these through the handlers below.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "malformed request"),
        (401, "authentication required or invalid"),
        (403, "not allowed"),
        (404, "not found"),
        (408, "the request body arrived too slowly"),
        (409, "conflicts with the current state"),
        (413, "the request body is too large"),
        (429, "quota spent; see Retry-After"),
        (503, "a dependency or feature is unavailable"),
    )
}

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


def status_code_name(status: int) -> str:
    """The error `code` used for a bare HTTP status."""
    return _STATUS_CODES.get(status, "error")


def unavailable_dependency(exc: BaseException) -> str | None:
    """'database' or 'redis' when `exc` means that dependency cannot be reached now."""
    if postgres_down(exc):
        return "database"
    if isinstance(exc, _REDIS_DOWN):
        return "redis"
    if isinstance(exc, OSError | TimeoutError):
        # A refused or reset connection, or a pool/connect/command timeout: whose was it?
        for frame, _ in traceback.walk_tb(exc.__traceback__):
            module = frame.f_globals.get("__name__", "")
            if module.startswith("asyncpg"):
                return "database"
            if module.startswith("redis"):
                return "redis"
    return None


_LOG_EVERY_S = 10.0
_unavailable_log: dict[str, tuple[float, int]] = {}  # dependency -> (last logged, 503s since)


def _log_unavailable(dependency: str, request: Request, exc: BaseException) -> None:
    """One warning per dependency every few seconds during an outage, not one per request."""
    now = time.monotonic()
    last, since = _unavailable_log.get(dependency, (float("-inf"), 0))
    if now - last < _LOG_EVERY_S:
        _unavailable_log[dependency] = (last, since + 1)
        return
    _unavailable_log[dependency] = (now, 0)
    log.warning(
        "%s unavailable (%s on %s %s); answering 503%s",
        dependency,
        type(exc).__name__,
        request.method,
        request.url.path,
        f" ({since} more since the last warning)" if since else "",
    )


def unavailable_response(dependency: str, language: str | None = None) -> JSONResponse:
    """503 in the common shape: which dependency, and when to try again."""
    return error_response(
        503,
        f"{dependency}_unavailable",
        localizer(language)._(_UNAVAILABLE.get(dependency, _UNAVAILABLE_OTHER)),
        details={"dependency": dependency, "retry_after_s": RETRY_AFTER_S},
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def install_error_handlers(app: FastAPI) -> None:
    def said(request: Request, message: str) -> str:
        """`message` in the request's language (unchanged when the catalogue lacks it)."""
        return localizer(request_language(request))._(message)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status,
            exc.code,
            said(request, exc.message),
            details=exc.details,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg")}
            for err in exc.errors()
        ]
        return error_response(422, "invalid_request", said(request, _INVALID), details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = status_code_name(exc.status_code)
        # an edge error (web.middleware.EdgeError) words itself, with its numbers formatted
        render = getattr(exc, "text", None)
        message = (
            render(localizer(request_language(request)))
            if callable(render)
            else said(request, str(exc.detail))
        )
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(asyncpg.exceptions.CharacterNotInRepertoireError)
    async def _bad_text(request: Request, exc: Exception) -> JSONResponse:
        # PostgreSQL refuses NUL characters in text; that is the client's input, not our fault.
        return error_response(400, "bad_request", said(request, _BAD_TEXT))

    def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", said(request, _INTERNAL))

    async def _maybe_unavailable(request: Request, exc: Exception) -> JSONResponse:
        dependency = unavailable_dependency(exc)
        if dependency is None:
            return _internal(request, exc)
        _log_unavailable(dependency, request, exc)
        return unavailable_response(dependency, request_language(request))

    # Registered by class so they answer inside the app (a bare `Exception` handler runs in
    # ServerErrorMiddleware, which re-raises after answering).
    for exc_class in (*POSTGRES_DOWN, asyncpg.InterfaceError, *_REDIS_DOWN, OSError, TimeoutError):
        app.add_exception_handler(exc_class, _maybe_unavailable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal(request, exc)
