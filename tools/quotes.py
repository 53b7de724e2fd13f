"""Market quotes for many coins from one batched CoinGecko call, kept in Redis.

Keyless CoinGecko allows about 10 calls a minute for the whole service. A full `/coins/{id}`
refresh per coin per answer cannot keep a hundred popular coins fresh; one `/coins/markets`
call can. The warming job refreshes the hot set's quotes every few minutes; when an answer is
served, a quote newer than the result's own CoinGecko data replaces its market figures (price,
market cap, volume, 24 h / 7 d change, rank, ATH), with CoinGecko's `last_updated` as their
time. Everything else in the result (holders, venues, volatility, TVL) keeps its own age.

Quotes are rebuildable: Redis only, best effort (an unreachable Redis means no overlay).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime

from redis.exceptions import RedisError

from chainlens.deps import Deps
from tools.http import SourceError
from tools.results import Evidence, OnchainResult, ToolResult, section_as_of, utcnow
from tools.sources import coingecko
from tools.sources._util import iso

log = logging.getLogger(__name__)
QUOTE_TTL_S = 30 * 60  # older than this, a quote is no better than a snapshot


def _key(deps: Deps, coin_id: str) -> str:
    return deps.keys("quote", coin_id)


async def refresh_quotes(deps: Deps, coin_ids: Sequence[str]) -> int:
    """Fetch quotes for `coin_ids` in batches and store them; returns how many were stored."""
    ids = list(dict.fromkeys(coin_ids))
    if not ids:
        return 0
    try:
        rows = await coingecko.fetch_markets(deps, ids)
    except SourceError as exc:
        log.warning("quote refresh failed: %s", exc.reason)
        return 0
    fetched = utcnow().isoformat()
    try:
        async with deps.redis.pipeline(transaction=False) as pipe:
            for row in rows:
                quote = {
                    "facts": coingecko.market_row_facts(row),
                    "last_updated": row.get("last_updated"),
                    "fetched_at": fetched,
                }
                pipe.set(_key(deps, row["id"]), json.dumps(quote), ex=QUOTE_TTL_S)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("could not store quotes: %s", type(exc).__name__)
        return 0
    return len(rows)


async def with_fresh_quote(deps: Deps, result: ToolResult) -> ToolResult | None:
    """The on-chain result with newer market figures from its quote; None when none is newer."""
    if not isinstance(result, OnchainResult):
        return None
    try:
        raw = await deps.redis.get(_key(deps, result.project_id))
    except (RedisError, OSError):
        return None
    if raw is None:
        return None
    quote = json.loads(raw)
    when: datetime | None = iso(quote.get("last_updated"))
    fetched = iso(quote.get("fetched_at"))
    if when is None or fetched is None:
        return None
    current = [e for e in result.evidence if e.source == coingecko.SOURCE]
    if current and all(e.as_of >= when for e in current):
        return None
    facts = {k: v for k, v in quote["facts"].items() if v is not None}
    evidence = [e for e in result.evidence if e.source != coingecko.SOURCE]
    evidence.append(
        Evidence(
            source=coingecko.SOURCE,
            url=coingecko.page_url(result.project_id),
            fetched_at=fetched,
            data_as_of=when,
        )
    )
    # the figures' age is now the quote's (`age_seconds` is measured again when served)
    return result.model_copy(
        update={
            **facts,
            "evidence": evidence,
            "age_seconds": 0.0,
            "as_of": section_as_of(evidence) or when,
        }
    )
