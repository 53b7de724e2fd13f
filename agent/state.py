"""The graph's state: what each node reads and the keys it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, TypedDict

from agent.events import CacheState, FinalEvent, Usage
from agent.rules import Plan
from chainlens.i18n import Language
from tools.market import MarketData
from tools.resolve import Comparison
from tools.results import Project, Resolution, ToolName, ToolResult


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One tool's outcome inside an answer."""

    tool: ToolName
    result: ToolResult
    cache: CacheState
    elapsed_ms: float
    services_called: tuple[str, ...] = field(default=())
    l1_digest: str | None = None  # the hot-cache entry this result is (tools.cache.digest)

    @property
    def ok(self) -> bool:
        return self.cache != "none"


def merge_runs(
    left: dict[str, ToolRun] | None, right: dict[str, ToolRun] | None
) -> dict[str, ToolRun]:
    """Parallel tool nodes each add their own entry."""
    return {**(left or {}), **(right or {})}


class AgentState(TypedDict, total=False):
    question: str
    conversation_id: str | None
    forced_tools: list[ToolName] | None  # REST callers that name their modules skip planning
    language: Language  # the turn's language: the answer is written in it
    resolution: Resolution
    plan: Plan
    plan_usage: Usage
    runs: Annotated[dict[str, ToolRun], merge_runs]
    market: MarketData  # intent "market": the whole market's figures
    comparison: Comparison | None  # a comparison's projects (or what did not resolve)
    final: FinalEvent


class ToolTask(TypedDict, total=False):
    """What one fanned-out tool node receives (via `Send`)."""

    tool: ToolName
    project: Project
    key: str  # its entry in `runs`: the tool's name, or "<project id>:<tool>" in comparisons
