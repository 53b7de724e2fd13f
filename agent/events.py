"""The events every channel consumes, discriminated by `type`.

Order: `plan`, then `tool_started`/`tool_finished` per tool, then `text` chunks, then one
`final` (optionally preceded by `error` when the model failed after text had started).
`final.answer` is always the complete answer; clients that streamed `text` may keep it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from agent.facts import Source
from agent.rules import Intent, MarketKind, Plan, PlanRouter, Window
from agent.writer import Report
from chainlens.i18n import Language
from tools.market import MarketData
from tools.results import AnyToolResult, Project, ToolName

CacheState = Literal["hot", "warm", "live", "stale", "none"]


class Usage(BaseModel):
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    model: str = "deterministic"  # the model that wrote the answer, or "deterministic"

    def plus(self, other: Usage) -> Usage:
        """Both calls' tokens and cost; the later call's model."""
        return Usage(
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_out=self.tokens_out + other.tokens_out,
            cost_usd=round(self.cost_usd + other.cost_usd, 8),
            model=other.model if other.model != "deterministic" else self.model,
        )


class PlanInfo(BaseModel):
    tools: list[ToolName]
    router: PlanRouter
    intent: Intent
    market: MarketKind | None = None  # intent "market": overview, trending or movers
    window: Window | None = None  # movers: "24h" or "7d"
    project_ids: list[str] = Field(default_factory=list)  # intent "compare": 2-3 projects

    @classmethod
    def of(cls, plan: Plan) -> PlanInfo:
        return cls(
            tools=list(plan.tools),
            router=plan.router,
            intent=plan.intent,
            market=plan.market,
            window=plan.window if plan.market == "movers" else None,
            project_ids=list(plan.project_ids),
        )


class PlanEvent(BaseModel):
    type: Literal["plan"] = "plan"
    project: Project | None
    suggestions: list[Project] = Field(default_factory=list)
    plan: PlanInfo
    language: Language = "en"  # the turn's language (agent/language.py): the answer's
    projects: list[Project] = Field(default_factory=list)  # a comparison's projects, in order


class ToolStartedEvent(BaseModel):
    type: Literal["tool_started"] = "tool_started"
    tool: ToolName
    project_id: str | None = None  # set in comparisons (one run per project and tool)


class ToolFinishedEvent(BaseModel):
    type: Literal["tool_finished"] = "tool_finished"
    tool: ToolName
    project_id: str | None = None  # set in comparisons (one run per project and tool)
    ok: bool  # False when the tool returned nothing usable (timeout, every source down)
    cache: CacheState
    elapsed_ms: float
    stale: bool = False
    missing: dict[str, str] = Field(default_factory=dict)
    # Some of its sources did not answer (or it is an old snapshot): show it as partial, not ✓.
    partial: bool = False


class TextEvent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    code: str  # "llm_failed", "internal"
    message: str


class FinalEvent(BaseModel):
    type: Literal["final"] = "final"
    answer: str
    project: Project | None
    suggestions: list[Project] = Field(default_factory=list)
    plan: PlanInfo
    results: dict[str, AnyToolResult] = Field(default_factory=dict)
    sources: list[Source] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cache_hit: bool = False  # no upstream work: answer cache hit, or cached data + no model
    price_history: list[tuple[int, float]] = Field(default_factory=list)
    report: Report | None = None
    writer: Literal["llm", "deterministic"] = "deterministic"
    conversation_id: str | None = None
    latency_ms: float = 0.0
    # False when tools were planned and none of them returned any data: the answer only says
    # so, and the chat service gives the request back.
    substantive: bool = True
    language: Language = "en"  # the language the answer is written in
    market: MarketData | None = None  # intent "market": the figures the answer was written from
    # intent "compare": the projects (the first is `project`), each one's results and prices
    projects: list[Project] = Field(default_factory=list)
    compared: dict[str, dict[str, AnyToolResult]] = Field(default_factory=dict)
    price_histories: dict[str, list[tuple[int, float]]] = Field(default_factory=dict)


AgentEvent = Annotated[
    PlanEvent | ToolStartedEvent | ToolFinishedEvent | TextEvent | ErrorEvent | FinalEvent,
    Field(discriminator="type"),
]
