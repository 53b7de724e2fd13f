"""Choose the tools: LLM tool-calling when a model is configured, the rules otherwise.

Both paths return the same `Plan`. The model's plan is used only when it names known tools;
any model failure, or an empty answer for a named project, falls back to the rules.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.events import Usage
from agent.prompts import chat_messages, planner_messages, planner_tools
from agent.rules import Intent, Plan, asks_full_research, aspects_in, plan_by_rules
from chainlens.deps import Deps
from tools.results import TOOL_NAMES, Project, ToolName

log = logging.getLogger(__name__)

PLANNER_MAX_TOKENS = 100


async def plan_tools(deps: Deps, question: str, project: Project | None) -> tuple[Plan, Usage]:
    """The plan for `question` about `project`, and what planning cost."""
    rules = plan_by_rules(question, has_project=project is not None)
    if project is None or deps.llm is None:
        return rules, Usage()
    try:
        response = await deps.llm.acompletion(
            model=primary_model(deps.llm),
            messages=chat_messages(planner_messages(question, project)),
            tools=planner_tools(),
            tool_choice="auto",
            max_tokens=PLANNER_MAX_TOKENS,
            temperature=0,
            # Our tools are plain functions; this skips LiteLLM's MCP gateway probe, which
            # imports the optional `mcp` package and fails every tool call without it.
            _skip_mcp_handler=True,
        )
    except Exception as exc:  # noqa: BLE001 - any provider error: the rules are the fallback
        log.warning("LLM planner failed (%s); using rules", type(exc).__name__)
        return rules, Usage()
    usage = usage_of(response)
    chosen = _tool_names(response)
    if not chosen:
        log.info("LLM planner chose no tools for a named project; using rules")
        return rules, usage
    intent: Intent = (
        "research"
        if set(chosen) == set(TOOL_NAMES)
        and (asks_full_research(question) or not aspects_in(question))
        else "aspects"
    )
    return Plan.of(chosen, intent=intent, router="llm"), usage


def primary_model(router: Any) -> str:
    """The first model group of the router: every call starts there (fallbacks follow)."""
    return str(router.model_list[0]["model_name"])


def _tool_names(response: Any) -> list[ToolName]:
    try:
        calls = response.choices[0].message.tool_calls or []
    except (AttributeError, IndexError):
        return []
    names = [getattr(call.function, "name", None) for call in calls]
    return [n for n in TOOL_NAMES if n in names]


def usage_of(response: Any) -> Usage:
    """Tokens and LiteLLM's response cost of a non-streamed completion."""
    usage = getattr(response, "usage", None)
    hidden = getattr(response, "_hidden_params", None) or {}
    tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    cost = hidden.get("response_cost")
    model = str(hidden.get("litellm_model_name") or getattr(response, "model", "") or "unknown")
    return Usage(
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=float(cost) if cost else 0.0,
        model=model,
    )
