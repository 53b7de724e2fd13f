"""Run dependencies handed to every node through LangGraph's `Runtime.context`."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from chainlens.deps import Deps
from tools.results import ToolName

# Each tool makes several upstream calls (with their own HTTP timeouts); this bounds the whole.
DEFAULT_TOOL_TIMEOUT_S: dict[ToolName, float] = {
    "onchain": 25.0,
    "sentiment": 25.0,
    "tokenomics": 25.0,
    "team": 30.0,
}


@dataclass(frozen=True, slots=True)
class AgentContext:
    deps: Deps
    tool_timeout_s: dict[ToolName, float] = field(
        default_factory=lambda: dict(DEFAULT_TOOL_TIMEOUT_S)
    )
    refresh: bool = False  # bypass the tools' cache (admin refresh)
    # Node tasks now running. LangGraph does not cancel a running node when the consumer of
    # `astream` goes away, so `answer_stream` cancels these itself (client left, timeout).
    running: set[asyncio.Task[Any]] = field(default_factory=set)

    def cancel_running(self) -> None:
        for task in list(self.running):
            task.cancel()


N = TypeVar("N", bound=Callable[..., Awaitable[Any]])


def cancellable(node: N) -> N:
    """Register the node's task in `runtime.context.running` while it runs."""

    @functools.wraps(node)
    async def wrapper(state: Any, runtime: Any) -> Any:
        task = asyncio.current_task()
        running: set[asyncio.Task[Any]] = runtime.context.running
        if task is not None:
            running.add(task)
        try:
            return await node(state, runtime)
        finally:
            running.discard(task)

    return cast("N", wrapper)  # functools.wraps: the same call signature as `node`
