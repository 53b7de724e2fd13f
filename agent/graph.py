"""The agent graph: resolve -> plan -> tools in parallel (one `Send` each) -> compose.

Nodes are `async def node(state, runtime) -> dict`; events for the stream go through
`runtime.stream_writer` (LangGraph's "custom" stream mode).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from agent.compose import compose_answer
from agent.context import AgentContext, cancellable
from agent.events import PlanEvent, PlanInfo, ToolFinishedEvent, ToolStartedEvent, Usage
from agent.memory import remember_project, remembered_project
from agent.planner import plan_tools
from agent.rules import Intent, Plan, aspects_in, market_intent, points_back, refers_back
from agent.state import AgentState, ToolRun, ToolTask
from chainlens.deps import Deps
from tools.analysis import run_tool as run_analysis
from tools.index import load_index
from tools.market import MarketData, market_data
from tools.resolve import (
    Comparison,
    resolve_comparison,
    resolve_offline,
    resolve_project,
)
from tools.results import RESULT_TYPES, TOOL_NAMES, Resolution, utcnow

log = logging.getLogger(__name__)


async def resolve_question(
    deps: Deps, question: str, conversation_id: str | None = None
) -> tuple[Resolution, Comparison | None]:
    """The project a question is about: named in it, or the conversation's for a follow-up
    ("what about its team?"). A question about the whole market ("how is the market today?",
    "what's trending?") that names no project resolves to none, whatever the conversation was
    about, unless it points back with a pronoun ("is it trending?"). A comparison ("SOL vs
    ETH") resolves to its first project and the `Comparison` of all of them; one with too many
    projects or a name that does not resolve resolves to no project (the answer says why)."""
    comparison = await resolve_comparison(deps, question)
    if comparison is not None:
        first = comparison.projects[0] if comparison.ok else None
        suggestions = [p for u in comparison.unresolved for p in u.suggestions]
        return Resolution(
            query=question,
            project=first,
            suggestions=suggestions,
            method="index" if first else "none",
        ), comparison
    if market_intent(question) is not None:
        offline = resolve_offline(question, await load_index(deps))
        if offline.project is None and not points_back(question):
            return Resolution(query=question), None  # no CoinGecko search for "hot" etc.
    resolution = await resolve_project(deps, question)
    if resolution.project is None and refers_back(question):
        earlier = await remembered_project(deps, conversation_id)
        if earlier is not None:
            resolution = Resolution(query=question, project=earlier, method="context")
    return resolution, None


@cancellable
async def resolve(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, object]:
    """Find the project in the question, or in the conversation for "what about its team?"."""
    deps = runtime.context.deps
    conversation_id = state.get("conversation_id")
    resolution, comparison = await resolve_question(deps, state["question"], conversation_id)
    if resolution.project is not None:
        await remember_project(deps, conversation_id, resolution.project)
    return {"resolution": resolution, "comparison": comparison}


async def plan_question(
    deps: Deps, question: str, resolution: Resolution, comparison: Comparison | None
) -> tuple[Plan, Usage]:
    """The plan: a comparison runs the asked-about aspects (all four when none is named) for
    every project; a comparison that cannot be made runs nothing."""
    if comparison is not None and not comparison.ok:
        return Plan(intent="none"), Usage()
    chosen, usage = await plan_tools(deps, question, resolution.project)
    if comparison is None:
        return chosen, usage
    aspects = aspects_in(question)
    tools = chosen.tools if aspects and chosen.intent != "research" else TOOL_NAMES
    return Plan.of(list(tools), intent="compare", router=chosen.router).model_copy(
        update={"project_ids": tuple(p.id for p in comparison.projects)}
    ), usage


@cancellable
async def plan(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, object]:
    """Choose the tools (LLM tool-calling or rules) and announce the plan."""
    resolution = state["resolution"]
    forced = state.get("forced_tools")
    comparison = state.get("comparison")
    if forced is not None and resolution.project is not None and comparison is None:
        intent: Intent = "research" if set(forced) == set(TOOL_NAMES) else "aspects"
        chosen, usage = Plan.of(list(forced), intent=intent), Usage()
    else:
        chosen, usage = await plan_question(
            runtime.context.deps, state["question"], resolution, comparison
        )
    runtime.stream_writer(
        PlanEvent(
            project=resolution.project,
            suggestions=resolution.suggestions,
            plan=PlanInfo.of(chosen),
            language=state.get("language", "en"),
            projects=comparison.projects if comparison is not None and comparison.ok else [],
        )
    )
    return {"plan": chosen, "plan_usage": usage}


def fan_out(state: AgentState) -> list[Send] | Literal["compose", "market"]:
    """One `run_tool` task per planned tool, all in the same step; none -> straight to compose."""
    project = state["resolution"].project
    tools = state["plan"].tools
    if project is None and state["plan"].intent == "market":
        return "market"
    if project is None or not tools:
        return "compose"
    comparison = state.get("comparison")
    if comparison is not None and comparison.ok:
        # every project × tool in the same step: same timeouts, cache and single-flight
        return [
            Send("run_tool", ToolTask(tool=tool, project=p, key=f"{p.id}:{tool}"))
            for p in comparison.projects
            for tool in tools
        ]
    return [Send("run_tool", ToolTask(tool=tool, project=project)) for tool in tools]


@cancellable
async def run_tool(state: ToolTask, runtime: Runtime[AgentContext]) -> dict[str, object]:
    """Run one tool under its own timeout; a failure becomes a result that says what is missing.
    `state` is the `Send` payload (LangGraph's node protocol names the parameter so)."""
    ctx = runtime.context
    tool, project = state["tool"], state["project"]
    key = state.get("key", tool)
    in_comparison = project.id if key != tool else None
    runtime.stream_writer(ToolStartedEvent(tool=tool, project_id=in_comparison))
    timeout = ctx.tool_timeout_s.get(tool, 30.0)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            outcome = await run_analysis(ctx.deps, tool, project, refresh=ctx.refresh)
        run = ToolRun(
            tool=tool,
            result=outcome.result,
            cache=outcome.cache,
            elapsed_ms=_ms(started),
            services_called=tuple(outcome.services_called),
            l1_digest=outcome.l1_digest,
        )
    except TimeoutError:
        log.warning("%s tool timed out after %.1fs for %s", tool, timeout, project.id)
        run = _failed_run(state, f"timed out after {timeout:g}s", started)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # this answer itself is being cancelled (client gone): stop
        # A call shared with another tool (single-flight) was cancelled by that tool's timeout.
        log.warning("%s tool lost a shared upstream call for %s", tool, project.id)
        run = _failed_run(state, "an upstream call was cancelled", started)
    except Exception:  # run_tool promises not to raise; if it does, the other tools still count
        log.exception("%s tool raised for %s", tool, project.id)
        run = _failed_run(state, "the tool failed unexpectedly", started)
    runtime.stream_writer(
        ToolFinishedEvent(
            tool=tool,
            project_id=in_comparison,
            ok=run.ok,
            cache=run.cache,
            elapsed_ms=run.elapsed_ms,
            stale=run.result.stale,
            missing=run.result.missing,
            partial=run.ok and bool(run.result.stale or run.result.sources_failed),
        )
    )
    return {"runs": {key: run}}


MARKET_TIMEOUT_S = 25.0


@cancellable
async def market(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, object]:
    """The whole market's figures (overview, trending or movers), cached like the tools."""
    ctx = runtime.context
    kind = state["plan"].market or "overview"
    try:
        async with asyncio.timeout(MARKET_TIMEOUT_S):
            data = await market_data(ctx.deps, kind, refresh=ctx.refresh)
    except TimeoutError:
        log.warning("market %s timed out after %.0fs", kind, MARKET_TIMEOUT_S)
        data = MarketData(
            kind=kind,
            fetched_at=utcnow(),
            cache="none",
            missing={kind: f"timed out after {MARKET_TIMEOUT_S:g}s"},
        )
    return {"market": data}


def _failed_run(task: ToolTask, why: str, started: float) -> ToolRun:
    result = RESULT_TYPES[task["tool"]](project_id=task["project"].id, missing={"all": why})
    return ToolRun(tool=task["tool"], result=result, cache="none", elapsed_ms=_ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@cancellable
async def compose(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, object]:
    """Write the answer (model or deterministic writer) and build the final event."""
    final = await compose_answer(
        runtime.context.deps,
        question=state["question"],
        resolution=state["resolution"],
        plan=state["plan"],
        runs=state.get("runs", {}),
        plan_usage=state.get("plan_usage", Usage()),
        emit=runtime.stream_writer,
        market=state.get("market"),
        comparison=state.get("comparison"),
        conversation_id=state.get("conversation_id"),
        language=state.get("language", "en"),
    )
    return {"final": final}


def build_graph() -> CompiledStateGraph[AgentState, AgentContext, AgentState, AgentState]:
    """The compiled agent graph; stateless, so one instance serves every request."""
    graph = StateGraph(AgentState, context_schema=AgentContext)
    graph.add_node("resolve", resolve)
    graph.add_node("plan", plan)
    graph.add_node("run_tool", run_tool)
    graph.add_node("market", market)
    graph.add_node("compose", compose)
    graph.add_edge(START, "resolve")
    graph.add_edge("resolve", "plan")
    graph.add_conditional_edges("plan", fan_out, ["run_tool", "market", "compose"])
    graph.add_edge("run_tool", "compose")
    graph.add_edge("market", "compose")
    graph.add_edge("compose", END)
    return graph.compile()
