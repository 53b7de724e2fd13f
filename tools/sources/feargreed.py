"""alternative.me Crypto Fear & Greed index: the market-wide mood, used as background."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chainlens.deps import Deps
from tools.http import BadResponse, get_json
from tools.sources._util import from_unix, num

SOURCE = "alternative.me"
PAGE_URL = "https://alternative.me/crypto/fear-and-greed-index/"


@dataclass(frozen=True, slots=True)
class FearGreed:
    value: int
    label: str
    as_of: datetime | None


def parse(body: object, url: str = PAGE_URL) -> FearGreed:
    """The newest `data[0]`; BadResponse when `metadata.error` is set or the value is absent."""
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, url, "body is not an object")
    error = (
        (body.get("metadata") or {}).get("error")
        if isinstance(body.get("metadata"), dict)
        else None
    )
    if error:
        raise BadResponse(SOURCE, url, f"index error: {str(error)[:120]}")
    data = body.get("data")
    newest = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    value = num(newest.get("value"))
    if value is None:
        raise BadResponse(SOURCE, url, "no index value in data[0]")
    return FearGreed(
        int(value),
        str(newest.get("value_classification") or ""),
        from_unix(newest.get("timestamp")),
    )


async def fetch(deps: Deps) -> FearGreed:
    url = str(deps.settings.fear_greed_url)
    body = await get_json(
        deps, url, source=SOURCE, params={"limit": "2", "format": "json"}, memo_ttl=900
    )
    return parse(body, url)
