"""One JSON error shape for every failure: {"error": {"code", "message", "details"}}.

Routes raise `ApiError` (or let FastAPI raise validation errors); nothing else turns into a
response, and no stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, details: Any | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, *, details: Any | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


# Documented on every operation: any of them can answer these through the handlers below.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "malformed request"), (401, "authentication required or invalid"),
        (403, "not allowed"), (404, "not found"), (408, "the request body arrived too slowly"),
        (409, "conflicts with the current state"), (413, "the request body is too large"),
        (429, "quota spent; see Retry-After"),
        (503, "a dependency or feature is unavailable"))
}

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 408: "request_timeout", 409: "conflict",
                 413: "payload_too_large", 422: "invalid_request", 429: "rate_limited",
                 503: "unavailable"}


def status_code_name(status: int) -> str:
    """The error `code` used for a bare HTTP status."""
    return _STATUS_CODES.get(status, "error")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, details=exc.details,
                              headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg")}
            for err in exc.errors()
        ]
        return error_response(422, "invalid_request", "The request is not valid.",
                              details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = status_code_name(exc.status_code)
        return error_response(exc.status_code, code, str(exc.detail),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(asyncpg.exceptions.CharacterNotInRepertoireError)
    async def _bad_text(_: Request, exc: Exception) -> JSONResponse:
        # PostgreSQL refuses NUL characters in text; that is the client's input, not our fault.
        return error_response(400, "bad_request", "The request contains characters we cannot "
                              "store (such as NUL).")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "Something went wrong on our side.")
