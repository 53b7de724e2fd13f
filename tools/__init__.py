"""The four analysis tools, their data sources and the analysis cache.

Import what you need from here; nothing is loaded until first use:
`run_tool`, `analyze`, `ToolOutcome` (tools.analysis) and `warm_cache` (tools.warm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.analysis import ToolOutcome, analyze, run_tool
    from tools.warm import warm_cache

__all__ = ["ToolOutcome", "analyze", "run_tool", "warm_cache"]


def __getattr__(name: str) -> Any:
    if name in ("ToolOutcome", "analyze", "run_tool"):
        from tools import analysis

        return getattr(analysis, name)
    if name == "warm_cache":
        from tools import warm

        return warm.warm_cache
    raise AttributeError(f"module 'tools' has no attribute {name!r}")
