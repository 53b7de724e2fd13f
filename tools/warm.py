"""Cache warming: keep the most asked-about and trending projects hot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from chainlens.deps import Deps
from tools.analysis import ToolOutcome, analyze
from tools.http import SourceError, get_json
from tools.quotes import refresh_quotes
from tools.results import TOOL_NAMES, Project, ToolName
from tools.sources import coingecko
from tools.sources._util import dig

log = logging.getLogger(__name__)
WARM_CONCURRENCY = 2  # keyless CoinGecko allows only a few calls a minute


async def most_queried(deps: Deps, limit: int, days: int = 7) -> list[str]:
    """Project ids asked about most in the last `days` (query logs and daily usage)."""
    rows = await deps.db.fetch(
        """
        SELECT project_id, sum(n) AS n FROM (
            SELECT project_id, count(*) AS n FROM query_logs
             WHERE project_id IS NOT NULL AND created_at > now() - make_interval(days => $1)
             GROUP BY project_id
            UNION ALL
            SELECT project_id, sum(requests) AS n FROM project_usage
             WHERE day > current_date - $1::int GROUP BY project_id
        ) t GROUP BY project_id ORDER BY n DESC, project_id LIMIT $2
        """,
        days,
        limit,
    )
    return [r["project_id"] for r in rows]


async def trending_projects(deps: Deps) -> list[Project]:
    """CoinGecko's trending coins as projects; empty when CoinGecko is unreachable."""
    url = f"{str(deps.settings.coingecko_base_url).rstrip('/')}/search/trending"
    try:
        body = await get_json(deps, url, source=coingecko.SOURCE, memo_ttl=300)
    except SourceError as exc:
        log.warning("trending list unavailable: %s", exc.reason)
        return []
    out: list[Project] = []
    for coin in body.get("coins", []) if isinstance(body, dict) else []:
        item = dig(coin, "item")
        if isinstance(item, dict) and item.get("id") and item.get("symbol") and item.get("name"):
            out.append(
                Project(
                    id=str(item["id"]),
                    symbol=str(item["symbol"]).upper(),
                    name=str(item["name"]),
                    market_cap_rank=item.get("market_cap_rank"),
                )
            )
    return out


async def known_projects(deps: Deps, ids: Sequence[str]) -> list[Project]:
    rows = await deps.db.fetch(
        "SELECT id, symbol, name, market_cap_rank, platforms FROM projects WHERE id = ANY($1)",
        list(ids),
    )
    by_id = {r["id"]: r for r in rows}
    out = []
    for pid in ids:
        if (r := by_id.get(pid)) is not None:
            platforms = r["platforms"] if isinstance(r["platforms"], dict) else {}
            out.append(
                Project(
                    id=r["id"],
                    symbol=r["symbol"].upper(),
                    name=r["name"],
                    market_cap_rank=r["market_cap_rank"],
                    platforms={k: v for k, v in platforms.items() if k and v},
                )
            )
    return out


HOT_QUOTES = 100  # coins whose market quotes the warming job keeps fresh


async def refresh_hot_quotes(deps: Deps, limit: int = HOT_QUOTES) -> int:
    """One batched quote refresh for the most asked-about and trending coins."""
    try:
        ids = await most_queried(deps, limit)
    except (asyncpg.PostgresError, OSError) as exc:
        log.warning("usage history unavailable for quotes: %s", exc)
        ids = []
    for project in await trending_projects(deps):
        if len(ids) >= limit:
            break
        if project.id not in ids:
            ids.append(project.id)
    return await refresh_quotes(deps, ids[:limit])


async def warm_cache(
    deps: Deps, limit: int = 20, tools: Sequence[ToolName] = TOOL_NAMES
) -> dict[str, dict[ToolName, str]]:
    """Fill the cache for the most queried and trending projects; returns layer per tool.
    The hot set's market quotes are refreshed first, in one batched call."""
    await refresh_hot_quotes(deps)
    try:
        popular = await known_projects(deps, await most_queried(deps, limit))
    except (asyncpg.PostgresError, OSError) as exc:
        log.warning("usage history unavailable for warming: %s", exc)
        popular = []
    chosen: dict[str, Project] = {p.id: p for p in popular}
    for project in await trending_projects(deps):
        if len(chosen) >= limit:
            break
        chosen.setdefault(project.id, project)
    gate = asyncio.Semaphore(WARM_CONCURRENCY)

    async def one(project: Project) -> tuple[str, dict[ToolName, ToolOutcome]]:
        async with gate:
            return project.id, await analyze(deps, project, tools)

    done = await asyncio.gather(*(one(p) for p in list(chosen.values())[:limit]))
    return {pid: {t: o.cache for t, o in outcomes.items()} for pid, outcomes in done}
