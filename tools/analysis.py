"""Run the analysis tools through the cache: hot (Redis) -> warm (PostgreSQL) -> live sources,
falling back to the newest snapshot marked stale. Nothing here raises to the caller."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from chainlens.deps import Deps
from chainlens.outages import POSTGRES_ERRORS
from tools import cache, quotes
from tools.collect import ToolRun
from tools.onchain import run_onchain
from tools.results import RESULT_TYPES, Project, ToolName, ToolResult, utcnow
from tools.sentiment import run_sentiment
from tools.team import run_team
from tools.tokenomics import run_tokenomics

log = logging.getLogger(__name__)

CacheLayer = Literal["hot", "warm", "live", "stale", "none"]
RUNNERS: dict[ToolName, Callable[[Deps, Project], Awaitable[ToolRun]]] = {
    "onchain": run_onchain,
    "sentiment": run_sentiment,
    "tokenomics": run_tokenomics,
    "team": run_team,
}


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """A tool's result and where it came from."""

    result: ToolResult
    cache: CacheLayer
    services_called: list[str] = field(default_factory=list)
    # The digest of the hot-cache entry holding exactly this result; None when the result is
    # not in the hot cache (stale fallback, failure, Redis down). See `cache.digest`.
    l1_digest: str | None = None


def _unavailable(tool: ToolName, project: Project, why: str) -> ToolResult:
    return RESULT_TYPES[tool](project_id=project.id, missing={"all": why})


async def run_tool(
    deps: Deps, tool: ToolName, project: Project, *, refresh: bool = False
) -> ToolOutcome:
    """One tool's result for one project, through the cache; never raises.

    Whatever layer served it, the result's `age_seconds` is the true age of its data now
    (from the sources' own timestamps), not the time since it was cached."""
    outcome = await _run_tool(deps, tool, project, refresh=refresh)
    fresher = await quotes.with_fresh_quote(deps, outcome.result)
    if fresher is not None:
        # newer market figures from the batched quotes; no longer the hot-cache entry itself,
        # and stored data (not nothing) when live sources gave none
        layer: CacheLayer = "stale" if outcome.cache == "none" else outcome.cache
        outcome = dataclasses.replace(outcome, result=fresher, cache=layer, l1_digest=None)
    result = outcome.result
    age = round(max(result.age_seconds, cache.age_seconds(result.as_of)), 1)
    return dataclasses.replace(outcome, result=result.model_copy(update={"age_seconds": age}))


async def _run_tool(deps: Deps, tool: ToolName, project: Project, *, refresh: bool) -> ToolOutcome:
    try:
        if not refresh:
            hot = await cache.read_l1(deps, tool, project.id)
            if hot is not None:
                return ToolOutcome(hot.result, "hot", [], hot.digest)

        async def poll() -> ToolOutcome | None:
            found = await cache.read_l1(deps, tool, project.id)
            return None if found is None else ToolOutcome(found.result, "hot", [], found.digest)

        return await cache.single_flight(
            deps,
            cache.l1_key(deps, tool, project.id),
            lambda: _fill(deps, tool, project, refresh=refresh),
            poll,
        )
    except Exception as exc:  # the contract: a caller always gets a result with its reason
        log.exception("analysis %s/%s failed", tool, project.id)
        return ToolOutcome(
            _unavailable(tool, project, f"internal error ({type(exc).__name__})"), "none", []
        )


async def _snapshot(
    deps: Deps, tool: ToolName, project: Project
) -> tuple[ToolResult, float] | None:
    try:
        found = await cache.latest_snapshot(deps, tool, project.id)
    except POSTGRES_ERRORS as exc:
        log.warning("snapshot history unavailable: %s", exc)
        return None
    return None if found is None else (found[0], cache.age_seconds(found[1]))


async def _ttl(deps: Deps, result: ToolResult | None, project_id: str, partial: bool) -> int:
    vol = getattr(result, "volatility_annual", None)
    if vol is None:
        vol = await cache.volatility_hint(deps, project_id)
    return cache.ttl_for(vol, partial=partial, base=deps.settings.cache_ttl_s)


async def _fill(deps: Deps, tool: ToolName, project: Project, *, refresh: bool) -> ToolOutcome:
    snapshot = None if refresh else await _snapshot(deps, tool, project)
    if snapshot is not None:
        result, age = snapshot
        ttl = await _ttl(deps, result, project.id, partial=False)
        if age < ttl and not result.stale:
            written = await cache.write_l1(deps, result, int(ttl - age))
            return ToolOutcome(result, "warm", [], written)

    try:
        run = await RUNNERS[tool](deps, project)
    except Exception as exc:  # a parser bug must cost this tool, not the whole answer
        log.exception("tool %s crashed for %s", tool, project.id)
        run = ToolRun(
            _unavailable(tool, project, f"internal error ({type(exc).__name__})"),
            ["internal"],
            set(),
        )

    lost = _lost_sources(run)
    if lost:
        # Every source failed, or one the last complete result had (a spent request budget,
        # an outage): the newest snapshot, labelled with its age, beats a hole in the answer.
        snapshot = snapshot or await _snapshot(deps, tool, project)
        usable = snapshot is not None and (run.all_failed or _covers(snapshot[0], lost))
        if snapshot is None or not usable:
            if run.all_failed:
                return ToolOutcome(run.result, "none", run.called)
            snapshot = None
    if snapshot is not None and lost:
        old, age = snapshot
        reasons = "; ".join(sorted(set(run.result.missing.values())))[:500]
        stale = old.model_copy(
            update={
                "stale": True,
                "age_seconds": round(age, 1),
                "missing": {
                    **old.missing,
                    "live_data": f"live sources failed ({reasons}); "
                    f"showing data from {round(age / 60)} min ago",
                },
            }
        )
        return ToolOutcome(stale, "stale", run.called)

    result = run.result
    partial = set(run.called) - run.ok != set()
    try:
        await cache.save_snapshot(deps, result)
    except POSTGRES_ERRORS as exc:
        log.warning("could not save snapshot %s/%s: %s", tool, project.id, exc)
    if tool == "onchain":
        await cache.remember_volatility(
            deps, project.id, getattr(result, "volatility_annual", None)
        )
    written = await cache.write_l1(deps, result, await _ttl(deps, result, project.id, partial))
    return ToolOutcome(result, "live", run.called, written)


def _lost_sources(run: ToolRun) -> set[str]:
    return set(run.called) - run.ok


def _covers(snapshot: ToolResult, lost: set[str]) -> bool:
    """The snapshot has data from every source the live run lost, and lost none itself."""
    had = {e.source for e in snapshot.evidence}
    return lost <= had and not snapshot.sources_failed


async def analyze(
    deps: Deps, project: Project, tools: Sequence[ToolName], *, refresh: bool = False
) -> dict[ToolName, ToolOutcome]:
    """Run several tools in parallel for one project; never raises."""
    wanted = list(dict.fromkeys(tools))
    outcomes = await asyncio.gather(*(run_tool(deps, t, project, refresh=refresh) for t in wanted))
    return dict(zip(wanted, outcomes, strict=True))


def as_of(outcomes: dict[ToolName, ToolOutcome]) -> str:
    """ISO time of the newest result, for response metadata."""
    stamps = [o.result.as_of for o in outcomes.values()]
    return (max(stamps) if stamps else utcnow()).isoformat()
