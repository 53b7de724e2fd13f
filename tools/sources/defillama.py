"""DefiLlama: the gecko_id -> slug map from `/protocols` and one protocol's TVL and metadata."""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any

from redis.exceptions import RedisError

from chainlens.deps import Deps
from chainlens.redis_reply import as_bytes
from tools.http import BadResponse, NotFound, get_json, memoized
from tools.results import AuditStatus
from tools.sources._util import num

SOURCE = "DefiLlama"
SLUG_MAP_TTL_S = 3600  # /protocols is megabytes and changes slowly: DATA_SOURCES asks >= 1 h
log = logging.getLogger(__name__)

# currentChainTvls keys DefiLlama leaves out of its default TVL figure
_EXCLUDED_TVL_KEYS = {
    "borrowed",
    "staking",
    "pool2",
    "treasury",
    "vesting",
    "offers",
    "doublecounted",
    "liquidstaking",
    "dcandlsoverlap",
}
AUDIT_STATUS: dict[str, AuditStatus] = {
    "0": "no audits",
    "1": "partly audited",
    "2": "audited",
    "3": "audited fork",
}


def _base(deps: Deps) -> str:
    return str(deps.settings.defillama_base_url).rstrip("/")


def page_url(slug: str) -> str:
    return f"https://defillama.com/protocol/{slug}"


def slug_map(protocols: Any) -> dict[str, str]:
    """gecko_id -> slug; a multi-version protocol maps to its parent ("parent#uniswap")."""
    out: dict[str, str] = {}
    if not isinstance(protocols, list):
        return out
    for row in protocols:
        if not isinstance(row, dict):
            continue
        gecko_id, slug, parent = row.get("gecko_id"), row.get("slug"), row.get("parentProtocol")
        if not isinstance(gecko_id, str) or not gecko_id:
            continue
        if isinstance(parent, str) and parent.startswith("parent#"):
            out[gecko_id] = parent.removeprefix("parent#")
        elif isinstance(slug, str) and slug and gecko_id not in out:
            out[gecko_id] = slug
    return out


async def find_slug(deps: Deps, gecko_id: str) -> str | None:
    """The DefiLlama slug for a CoinGecko id, or None when DefiLlama does not list it."""
    return (await _slugs(deps)).get(gecko_id)


async def _slugs(deps: Deps) -> dict[str, str]:
    key = deps.keys("defillama", "slugs", "v1")

    async def load() -> dict[str, str]:
        try:
            cached = await deps.redis.get(key)
        except RedisError as exc:
            log.warning("redis unavailable for the DefiLlama slug map: %s", exc)
            cached = None
        if cached:
            return dict(json.loads(zlib.decompress(as_bytes(cached))))
        url = f"{_base(deps)}/protocols"
        mapping = slug_map(await get_json(deps, url, source=SOURCE))
        if not mapping:
            raise BadResponse(SOURCE, url, "protocol list is empty or not a list")
        try:
            await deps.redis.set(
                key, zlib.compress(json.dumps(mapping).encode()), ex=SLUG_MAP_TTL_S
            )
        except RedisError as exc:
            log.warning("could not cache the DefiLlama slug map: %s", exc)
        return mapping

    return await memoized(deps, "defillama-slugs", SLUG_MAP_TTL_S, load)


async def fetch_protocol(deps: Deps, slug: str) -> dict[str, Any]:
    url = f"{_base(deps)}/protocol/{slug}"
    body = await get_json(deps, url, source=SOURCE, memo_ttl=300)
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, url, "protocol body is not an object")
    if body.get("statusCode") == 400 or (body.get("message") and "name" not in body):
        raise NotFound(SOURCE, url, str(body.get("message") or "protocol not found")[:200])
    return body


# --- parsers ----------------------------------------------------------------------------------


def current_tvl(protocol: dict[str, Any]) -> float | None:
    """Default TVL: sum of currentChainTvls without borrowed/staking/pool2/… and "-" keys."""
    current = protocol.get("currentChainTvls")
    if isinstance(current, dict) and current:
        values = [
            num(v)
            for k, v in current.items()
            if "-" not in k and k.lower() not in _EXCLUDED_TVL_KEYS
        ]
        known = [v for v in values if v is not None]
        if known:
            return sum(known)
    # Older/trimmed bodies: fall back to the last point of the total series.
    series = protocol.get("tvl")
    if isinstance(series, list) and series and isinstance(series[-1], dict):
        return num(series[-1].get("totalLiquidityUSD"))
    return None


def audits(protocol: dict[str, Any]) -> tuple[AuditStatus, list[str]]:
    """(status label from DefiLlama's "0".."3" legend, audit links)."""
    status = AUDIT_STATUS.get(str(protocol.get("audits")), "unknown")
    raw_links = protocol.get("audit_links")
    links = (
        [x for x in raw_links if isinstance(x, str) and x] if isinstance(raw_links, list) else []
    )
    return status, links


def backers(protocol: dict[str, Any]) -> list[str]:
    """Investors named in `raises[]`, lead investors first, without repeats."""
    seen: dict[str, None] = {}
    raises = protocol.get("raises")
    for round_ in raises if isinstance(raises, list) else []:
        if not isinstance(round_, dict):
            continue
        for key in ("leadInvestors", "otherInvestors"):
            for name in round_.get(key) or []:
                if isinstance(name, str) and name.strip():
                    seen.setdefault(name.strip(), None)
    return list(seen)


def github_orgs(protocol: dict[str, Any]) -> list[str]:
    raw = protocol.get("github")
    return [g for g in raw if isinstance(g, str) and g] if isinstance(raw, list) else []
