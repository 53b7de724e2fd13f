"""Small helpers for reading loosely-typed JSON: missing or malformed is None, never 0."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


def num(value: Any) -> float | None:
    """A finite float from a number or numeric string; None for null, "" or junk."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def usd(obj: Any) -> float | None:
    """`obj.usd` when obj is a {currency: value} map (CoinGecko market_data style)."""
    return num(obj.get("usd")) if isinstance(obj, dict) else None


def dig(obj: Any, *path: str) -> Any:
    """Walk nested dicts; None as soon as a step is missing or not a dict."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def iso(value: Any) -> datetime | None:
    """Parse an ISO-8601 timestamp ("2024-12-19T12:01:11Z"); None when absent or invalid."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # 3.11 reads a trailing "Z"
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def from_unix(value: Any) -> datetime | None:
    seconds = num(value)
    if seconds is None or seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, UTC)
