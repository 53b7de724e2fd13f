"""Run dependencies handed to every node through LangGraph's `Runtime.context`."""

from __future__ import annotations

from dataclasses import dataclass, field

from chainlens.deps import Deps
from tools.results import ToolName

# Each tool makes several upstream calls (with their own HTTP timeouts); this bounds the whole.
DEFAULT_TOOL_TIMEOUT_S: dict[ToolName, float] = {
    "onchain": 25.0, "sentiment": 25.0, "tokenomics": 25.0, "team": 30.0,
}


@dataclass(frozen=True, slots=True)
class AgentContext:
    deps: Deps
    tool_timeout_s: dict[ToolName, float] = field(default_factory=lambda: dict(DEFAULT_TOOL_TIMEOUT_S))
    refresh: bool = False  # bypass the tools' cache (admin refresh)
