"""`POST /api/v1/analysis/comprehensive`: the seed's one-shot research report, via the agent."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from agent import answer
from billing.quota import upgrade_url
from chainlens.deps import Deps
from chainlens.i18n import N_
from tools.results import TOOL_NAMES, ToolName
from web.auth import Caller, current_caller
from web.charging import charged, require_paid
from web.errors import ApiError

router = APIRouter(tags=["analysis"])
QUICK_TOOLS: tuple[ToolName, ...] = ("onchain", "sentiment")


class ComprehensiveOptions(BaseModel):
    depth: Literal["quick", "standard", "deep"] = "standard"
    format: Literal["json", "markdown"] = "json"


class ComprehensiveRequest(BaseModel):
    symbol: Annotated[
        str,
        Field(
            min_length=1,
            max_length=100,
            description="Ticker, name, CoinGecko id or contract address.",
        ),
    ]
    modules: list[ToolName] | None = Field(
        default=None,
        description="Tools to run; default all four ('quick' depth: onchain, sentiment).",
    )
    options: ComprehensiveOptions = Field(default_factory=ComprehensiveOptions)


class ComprehensiveMetadata(BaseModel):
    total_latency_ms: float
    modules_completed: list[ToolName]
    modules_failed: list[ToolName]
    project: dict[str, Any]
    sources: list[dict[str, Any]]
    writer: Literal["llm", "deterministic"]
    usage: dict[str, Any]
    cache_hit: bool


class ComprehensiveResponse(BaseModel):
    summary: str
    risk_score: int | None
    investment_rating: str
    key_insights: list[str]
    detailed_sections: dict[str, Any]
    markdown: str | None = None
    metadata: ComprehensiveMetadata


def _modules(body: ComprehensiveRequest) -> list[ToolName]:
    if body.modules:
        return [t for t in TOOL_NAMES if t in set(body.modules)]
    return list(QUICK_TOOLS if body.options.depth == "quick" else TOOL_NAMES)


@router.post("/api/v1/analysis/comprehensive", response_model=ComprehensiveResponse)
async def comprehensive_analysis(
    body: ComprehensiveRequest,
    request: Request,
    response: Response,
    caller: Caller = Depends(current_caller),
) -> ComprehensiveResponse:
    """Research one project with the chosen modules; the answer's sections as JSON.

    Costs one request of the caller's quota (given back when the symbol is unknown); depth
    "deep" bypasses the cache and is a Pro feature."""
    deps: Deps = request.app.state.deps
    started = time.perf_counter()
    if body.options.depth == "deep":
        require_paid(
            caller, N_("Deep (uncached) analysis is part of the Pro plan."), upgrade_url(deps)
        )
    async with charged(request, response, caller):
        final = await answer(
            deps, body.symbol, tools=_modules(body), refresh=body.options.depth == "deep"
        )
        if final.project is None or final.report is None:
            suggestions = [
                {"id": p.id, "name": p.name, "symbol": p.symbol} for p in final.suggestions
            ]
            raise ApiError(
                404,
                "project_not_found",
                f"No project matches '{body.symbol}'.",
                details={"suggestions": suggestions},
            )
    report = final.report
    sections = {
        tool: {
            "key_facts": result.key_facts(),
            "risks": result.risks(),
            "missing": result.missing,
            "stale": result.stale,
            "data": result.model_dump(mode="json", exclude={"price_history"}),
        }
        for tool, result in final.results.items()
    }
    completed = [r.tool for r in final.results.values() if "all" not in r.missing]
    return ComprehensiveResponse(
        summary=report.summary,
        risk_score=report.risk_score,
        investment_rating=report.stance,
        key_insights=report.insights,
        detailed_sections=sections,
        markdown=final.answer if body.options.format == "markdown" else None,
        metadata=ComprehensiveMetadata(
            total_latency_ms=round((time.perf_counter() - started) * 1000, 1),
            modules_completed=completed,
            modules_failed=[r.tool for r in final.results.values() if r.tool not in completed],
            project=final.project.model_dump(mode="json"),
            sources=[s.model_dump() for s in final.sources],
            writer=final.writer,
            usage=final.usage.model_dump(),
            cache_hit=final.cache_hit,
        ),
    )
