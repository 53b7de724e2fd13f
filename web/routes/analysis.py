"""Analysis API: `GET /api/analyze` (the seed's response shape) and the admin cache refresh."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from billing.quota import upgrade_url
from chainlens.deps import Deps
from chainlens.i18n import N_
from tools.analysis import ToolOutcome, analyze, as_of
from tools.results import TOOL_NAMES, Project, ToolName
from web.auth import Caller, current_caller
from web.charging import charged, require_paid
from web.errors import ApiError
from web.security import require_admin

router = APIRouter(tags=["analysis"])
_PROJECT_ID = re.compile(r"^[a-z0-9-]{1,100}$")
BASIC_TOOLS: tuple[ToolName, ...] = ("onchain", "sentiment")


def _valid_id(raw: str) -> str:
    project_id = raw.strip().lower()
    if not _PROJECT_ID.match(project_id):
        raise ApiError(
            422,
            "invalid_request",
            "projectId must be 1-100 characters: a-z, 0-9, '-'.",
            details=[{"field": "projectId", "message": "does not match ^[a-z0-9-]{1,100}$"}],
        )
    return project_id


async def _resolve(deps: Deps, project_id: str) -> Project:
    """The exact project, or a 404 carrying the resolver's suggestions."""
    from tools.resolve import resolve_project  # owned by project resolution; loaded on use

    resolution = await resolve_project(deps, project_id)
    if resolution.project is not None:
        return resolution.project
    suggestions = [{"id": p.id, "name": p.name, "symbol": p.symbol} for p in resolution.suggestions]
    raise ApiError(
        404,
        "project_not_found",
        f"No project matches '{project_id}'.",
        details={"suggestions": suggestions},
    )


def _tool_body(outcome: ToolOutcome) -> dict[str, Any]:
    body = outcome.result.model_dump(mode="json")
    body["cache"] = outcome.cache
    return body


@router.get("/api/analyze")
async def analyze_project(
    request: Request,
    response: Response,
    project_id: Annotated[str, Query(alias="projectId", max_length=200)],
    include_advanced: Annotated[bool, Query(alias="includeAdvanced")] = False,
    include_realtime: Annotated[bool, Query(alias="includeRealtime")] = False,
    caller: Caller = Depends(current_caller),
) -> dict[str, Any]:
    """Analyse one project: onchain and sentiment, plus tokenomics and team when advanced.

    Costs one request of the caller's quota. `includeRealtime` (bypass the cache) is a Pro
    feature: it spends upstream rate limits that every user shares."""
    deps: Deps = request.app.state.deps
    checked_id = _valid_id(project_id)
    if include_realtime:
        require_paid(caller, N_("Real-time refresh is part of the Pro plan."), upgrade_url(deps))
    async with charged(request, response, caller):
        project = await _resolve(deps, checked_id)
        tools = TOOL_NAMES if include_advanced else BASIC_TOOLS
        outcomes = await analyze(deps, project, tools, refresh=include_realtime)
    services = sorted({s for o in outcomes.values() for s in o.services_called})
    body: dict[str, Any] = {"projectId": project.id, "project": project.model_dump(mode="json")}
    for tool in TOOL_NAMES:
        body[tool] = _tool_body(outcomes[tool]) if tool in outcomes else None
    body["metadata"] = {
        "cache_hit": all(o.cache in ("hot", "warm") for o in outcomes.values()),
        "services_called": services,
        "updated_at": as_of(outcomes),
        "cache": {t: o.cache for t, o in outcomes.items()},
    }
    return body


class RefreshRequest(BaseModel):
    project_ids: list[str] = Field(min_length=1, max_length=50)
    tools: list[ToolName] | None = None


@router.post("/api/v1/cache/refresh", dependencies=[Depends(require_admin)])
async def refresh_cache(request: Request, payload: RefreshRequest) -> dict[str, Any]:
    """Re-fetch the given projects' tools from live sources and store the results."""
    deps: Deps = request.app.state.deps
    tools = tuple(dict.fromkeys(payload.tools)) if payload.tools else TOOL_NAMES
    refreshed: dict[str, dict[str, str]] = {}
    not_found: list[str] = []
    for raw in payload.project_ids:
        try:
            project = await _resolve(deps, _valid_id(raw))
        except ApiError:
            not_found.append(raw)
            continue
        outcomes = await analyze(deps, project, tools, refresh=True)
        refreshed[project.id] = {t: o.cache for t, o in outcomes.items()}
    return {"refreshed": refreshed, "not_found": not_found}
