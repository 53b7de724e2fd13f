"""Run bookkeeping to the end even when the request that needs it is being cancelled.

A client that leaves cancels its request: anyio's cancel scope (Starlette, Uvicorn) cancels
the task again at every await, so `asyncio.shield` alone does not help — the first await
after it raises and what follows never runs. `finish_shielded` runs the work as its own task
(kept by reference, failures logged) and waits for it inside a shielded cancel scope: the
request finishes its bookkeeping, then the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import anyio

log = logging.getLogger(__name__)

_running: set[asyncio.Task[Any]] = set()


def _forget(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("shielded bookkeeping failed", exc_info=task.exception())


async def finish_shielded(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` to completion whatever happens to the caller; wait for it when possible."""
    task = asyncio.get_running_loop().create_task(work)
    _running.add(task)
    task.add_done_callback(_forget)
    with anyio.CancelScope(shield=True):
        # A plain asyncio cancel (not anyio's) can still end this wait; the task runs on.
        await asyncio.shield(task)
