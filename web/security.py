"""Admin access: endpoints that change shared state need the admin key from settings."""

from __future__ import annotations

import hmac

from fastapi import Request

from web.errors import ApiError


def require_admin(request: Request) -> None:
    """FastAPI dependency: `Authorization: Bearer <ADMIN_API_KEY>` or `X-Admin-Key`."""
    expected = request.app.state.deps.settings.admin_api_key
    if expected is None:
        raise ApiError(403, "admin_disabled", "Admin endpoints are off: ADMIN_API_KEY is not set.")
    supplied = request.headers.get("x-admin-key", "")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        supplied = supplied or auth[7:].strip()
    if not supplied or not hmac.compare_digest(supplied, expected.get_secret_value()):
        raise ApiError(401, "unauthorized", "A valid admin key is required.")
