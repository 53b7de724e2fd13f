"""The coin index: the bundled well-known coins merged with the `projects` table.

`tools/coin_index.json` ships with the package, so resolution works with no network and an
empty database. `refresh_index` fills `projects` from CoinGecko `/coins/markets` (and
`/coins/list` for contract platforms); `load_index` merges those rows over the bundled ones
(refreshed data wins, bundled aliases and GitHub repos are kept). Nothing here raises because
CoinGecko or PostgreSQL is unreachable: refresh reports 0 rows and loading falls back to the
bundled index, both with a log line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import asyncpg
import httpx

from chainlens.deps import Deps
from chainlens.settings import Settings
from tools.results import Project

log = logging.getLogger(__name__)

KeyKind = Literal["index", "alias"]
MARKETS_PAGES = 2  # 2 x 250 = the top 500 coins by market cap
_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One coin of the index, keyed by its CoinGecko id."""

    id: str
    symbol: str  # upper case
    name: str
    market_cap_rank: int | None = None
    aliases: tuple[str, ...] = ()
    platforms: Mapping[str, str] = field(default_factory=dict)
    github: tuple[str, ...] = ()

    def to_project(self, *, first_platform: str | None = None) -> Project:
        """Return the `Project` the tools receive (optionally listing one platform first)."""
        platforms = dict(self.platforms)
        if first_platform in platforms:
            platforms = {first_platform: platforms.pop(first_platform), **platforms}
        return Project(
            id=self.id,
            symbol=self.symbol.upper(),
            name=self.name,
            market_cap_rank=self.market_cap_rank,
            platforms=platforms,
            github_repos=list(self.github),
        )


def normalize(text: str) -> str:
    """Lower-case, punctuation to spaces, single spaces: 'Curve-DAO  Token' -> 'curve dao token'."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def compact(text: str) -> str:
    """Normalized with the spaces removed: 'ether.fi' and 'ether fi' both give 'etherfi'."""
    return normalize(text).replace(" ", "")


def address_key(address: str) -> str:
    """EVM addresses compare case-insensitively; other chains' (base58) addresses do not."""
    return address.lower() if _EVM_ADDRESS.fullmatch(address) else address


def rank_order(entry: IndexEntry) -> tuple[bool, int, str]:
    """Sort key putting the highest market cap (lowest rank) first, unranked coins last."""
    return (entry.market_cap_rank is None, entry.market_cap_rank or 0, entry.id)


class CoinIndex:
    """Lookup tables over a set of coins; every list it returns is ordered by market cap."""

    def __init__(self, entries: Iterable[IndexEntry]) -> None:
        self._by_id: dict[str, IndexEntry] = {e.id: e for e in entries}
        names: dict[str, dict[str, KeyKind]] = {}
        symbols: dict[str, set[str]] = {}
        self._addresses: dict[str, tuple[str, str]] = {}
        for e in self._by_id.values():
            keys: list[tuple[str, KeyKind]] = [(e.name, "index"), (e.id, "index")]
            keys += [(a, "alias") for a in e.aliases]
            for text, kind in keys:
                for key in {normalize(text), compact(text)}:
                    if key:
                        # a key that is both a name and an alias of one coin counts as a name
                        names.setdefault(key, {}).setdefault(e.id, kind)
            symbols.setdefault(e.symbol.lower(), set()).add(e.id)
            for platform, address in e.platforms.items():
                self._addresses.setdefault(address_key(address), (e.id, platform))
        self._names = {k: self._ranked_kinds(v) for k, v in names.items()}
        self._symbols = {k: self._ranked(v) for k, v in symbols.items()}

    def _ranked(self, ids: Iterable[str]) -> list[IndexEntry]:
        return sorted((self._by_id[i] for i in ids), key=rank_order)

    def _ranked_kinds(self, kinds: dict[str, KeyKind]) -> list[tuple[IndexEntry, KeyKind]]:
        return [(e, kinds[e.id]) for e in self._ranked(kinds)]

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, coin_id: object) -> bool:
        return coin_id in self._by_id

    def entries(self) -> list[IndexEntry]:
        """Every coin, highest market cap first."""
        return self._ranked(self._by_id)

    def get(self, coin_id: str) -> IndexEntry | None:
        """The coin with this CoinGecko id."""
        return self._by_id.get(coin_id)

    def by_name(self, key: str) -> list[tuple[IndexEntry, KeyKind]]:
        """Coins whose name, id or alias normalizes to `key` (already normalized)."""
        return self._names.get(key, [])

    def by_symbol(self, symbol: str) -> list[IndexEntry]:
        """Coins with this ticker, highest market cap first (collisions go to the biggest)."""
        return self._symbols.get(symbol.lower(), [])

    def by_address(self, address: str) -> tuple[IndexEntry, str] | None:
        """The coin and platform of a known contract address."""
        hit = self._addresses.get(address_key(address))
        return (self._by_id[hit[0]], hit[1]) if hit else None

    def name_keys(self) -> list[str]:
        """Every name/id/alias key, for fuzzy matching."""
        return list(self._names)


@lru_cache(maxsize=1)
def bundled_entries() -> tuple[IndexEntry, ...]:
    """The coins shipped in `tools/coin_index.json`."""
    raw = json.loads(resources.files("tools").joinpath("coin_index.json").read_text("utf-8"))
    return tuple(
        IndexEntry(
            id=c["id"],
            symbol=c["symbol"].upper(),
            name=c["name"],
            market_cap_rank=c.get("market_cap_rank"),
            aliases=tuple(c.get("aliases", ())),
            platforms=dict(c.get("platforms", {})),
            github=tuple(c.get("github", ())),
        )
        for c in raw["coins"]
    )


def bundled_index() -> CoinIndex:
    """The index with no refreshed data: what resolution uses before the first refresh."""
    return _bundled_index()


@lru_cache(maxsize=1)
def _bundled_index() -> CoinIndex:
    return CoinIndex(bundled_entries())


def merge_rows(bundled: Sequence[IndexEntry], rows: Iterable[Mapping[str, Any]]) -> CoinIndex:
    """Overlay `projects` rows on the bundled coins: refreshed facts win, aliases are united."""
    merged = {e.id: e for e in bundled}
    for row in rows:
        old = merged.get(row["id"])
        aliases = tuple(dict.fromkeys([*(old.aliases if old else ()), *(row["aliases"] or ())]))
        platforms = dict(row["platforms"] or {}) or dict(old.platforms if old else {})
        merged[row["id"]] = IndexEntry(
            id=row["id"],
            symbol=str(row["symbol"]).upper(),
            name=row["name"],
            market_cap_rank=row["market_cap_rank"],
            aliases=aliases,
            platforms=platforms,
            github=old.github if old else (),
        )
    return CoinIndex(merged.values())


# The merged index is rebuilt only when the table changes: one cheap aggregate per call keeps
# every replica current after any replica refreshes.
_cache: dict[str, tuple[tuple[int, object], CoinIndex]] = {}
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


async def load_index(deps: Deps) -> CoinIndex:
    """The bundled index merged with the `projects` table (bundled alone if the table is down)."""
    try:
        stamp = await deps.db.fetchrow("SELECT count(*) AS n, max(updated_at) AS at FROM projects")
        assert stamp is not None
        fingerprint = (int(stamp["n"]), stamp["at"])
        cached = _cache.get("merged")
        if cached and cached[0] == fingerprint:
            return cached[1]
        rows = (
            []
            if fingerprint[0] == 0
            else await deps.db.fetch(
                "SELECT id, symbol, name, market_cap_rank, aliases, platforms FROM projects"
            )
        )
    except _DB_ERRORS as exc:
        log.warning("coin index: projects table unavailable, using the bundled index: %s", exc)
        return bundled_index()
    index = bundled_index() if not rows else merge_rows(bundled_entries(), rows)
    _cache["merged"] = (fingerprint, index)
    return index


def coingecko_url(settings: Settings, path: str) -> str:
    """The CoinGecko URL for an API path, on the configured (possibly proxied) base."""
    return str(settings.coingecko_base_url).rstrip("/") + path


def coingecko_headers(settings: Settings) -> dict[str, str]:
    """Request headers for CoinGecko: the Demo key when one is configured."""
    if settings.coingecko_api_key is None:
        return {"accept": "application/json"}
    return {
        "accept": "application/json",
        "x-cg-demo-api-key": settings.coingecko_api_key.get_secret_value(),
    }


async def _get_json(deps: Deps, path: str, params: Mapping[str, str | int]) -> Any:
    response = await deps.http.get(
        coingecko_url(deps.settings, path),
        params=dict(params),
        headers=coingecko_headers(deps.settings),
    )
    response.raise_for_status()
    return response.json()


async def fetch_markets(deps: Deps, *, pages: int = MARKETS_PAGES) -> list[dict[str, Any]]:
    """The top coins by market cap from `/coins/markets` (stops at the first failing page)."""
    coins: list[dict[str, Any]] = []
    for page in range(1, pages + 1):
        params: dict[str, str | int] = {
            "vs_currency": "usd",
            "order": "market_cap_desc",
            "per_page": 250,
            "page": page,
            "sparkline": "false",
        }
        try:
            body = await _get_json(deps, "/coins/markets", params)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("coin index: /coins/markets page %d failed: %s", page, exc)
            break
        if not isinstance(body, list):
            log.warning("coin index: /coins/markets page %d was not a list", page)
            break
        coins += [c for c in body if isinstance(c, dict) and c.get("id") and c.get("symbol")]
    return coins


async def fetch_platforms(deps: Deps, ids: set[str]) -> dict[str, dict[str, str]]:
    """Contract addresses per coin from `/coins/list?include_platform=true` ({} on failure)."""
    try:
        body = await _get_json(deps, "/coins/list", {"include_platform": "true"})
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("coin index: /coins/list failed, keeping known platforms: %s", exc)
        return {}
    found: dict[str, dict[str, str]] = {}
    for coin in body if isinstance(body, list) else []:
        if not isinstance(coin, dict) or coin.get("id") not in ids:
            continue
        platforms = coin.get("platforms") or {}
        # native coins come back as {} or {"": ""}
        found[coin["id"]] = {p: address_key(a) for p, a in platforms.items() if p and a}
    return found


_UPSERT = """
INSERT INTO projects (id, symbol, name, market_cap_rank, aliases, platforms, updated_at)
VALUES ($1, $2, $3, $4, $5::text[], $6::jsonb, now())
ON CONFLICT (id) DO UPDATE SET
    symbol = EXCLUDED.symbol,
    name = EXCLUDED.name,
    market_cap_rank = EXCLUDED.market_cap_rank,
    aliases = ARRAY(SELECT DISTINCT a FROM unnest(projects.aliases || EXCLUDED.aliases) AS a
                    ORDER BY a),
    platforms = CASE WHEN EXCLUDED.platforms = '{}'::jsonb THEN projects.platforms
                     ELSE EXCLUDED.platforms END,
    updated_at = now()
"""


async def refresh_index(
    deps: Deps, *, pages: int = MARKETS_PAGES, include_platforms: bool = True
) -> int:
    """Upsert the top coins from CoinGecko into `projects`; return how many rows were written."""
    coins = await fetch_markets(deps, pages=pages)
    if not coins:
        return 0
    ids = {str(c["id"]) for c in coins}
    platforms = await fetch_platforms(deps, ids) if include_platforms else {}
    bundled = {e.id: e for e in bundled_entries()}
    records = []
    for c in coins:
        cid = str(c["id"])
        rank = c.get("market_cap_rank")
        aliases = list(bundled[cid].aliases) if cid in bundled else []
        records.append(
            (
                cid,
                str(c["symbol"]).upper(),
                str(c.get("name") or cid),
                rank if isinstance(rank, int) else None,
                aliases,
                platforms.get(cid, {}),
            )
        )
    try:
        await deps.db.executemany(_UPSERT, records)
    except _DB_ERRORS as exc:
        log.warning("coin index: could not write projects: %s", exc)
        return 0
    _cache.clear()
    log.info("coin index: refreshed %d coins from CoinGecko", len(records))
    return len(records)
