"""Admin access: endpoints that change shared state need the admin key from settings."""

from __future__ import annotations

import hmac

from fastapi import Request

from web.errors import ApiError


def _admin_key_matches(request: Request) -> bool:
    expected = request.app.state.deps.settings.admin_api_key
    supplied = request.headers.get("x-admin-key", "")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        supplied = supplied or auth[7:].strip()
    return bool(
        expected is not None
        and supplied
        and hmac.compare_digest(supplied.encode(), expected.get_secret_value().encode())
    )


def require_admin(request: Request) -> None:
    """FastAPI dependency: `Authorization: Bearer <ADMIN_API_KEY>` or `X-Admin-Key`."""
    if request.app.state.deps.settings.admin_api_key is None:
        raise ApiError(403, "admin_disabled", "Admin endpoints are off: ADMIN_API_KEY is not set.")
    if not _admin_key_matches(request):
        raise ApiError(401, "unauthorized", "A valid admin key is required.")


def is_admin(request: Request) -> bool:
    """Whether the request carries the admin key (for answers with internal detail)."""
    return _admin_key_matches(request)
