"""Bookkeeping shared by the tools: which sources were called, which answered, what is missing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from tools.http import SourceError
from tools.results import Evidence, ToolResult, section_as_of, utcnow

T = TypeVar("T")


@dataclass(slots=True)
class Collector:
    """Runs source calls, turning each SourceError into `missing` entries for its fields."""

    evidence: list[Evidence] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    called: list[str] = field(default_factory=list)
    ok: set[str] = field(default_factory=set)

    async def fetch(
        self,
        source: str,
        call: Awaitable[T],
        *,
        fields: tuple[str, ...],
        url: str,
        dated: Callable[[T], datetime | None] | None = None,
    ) -> T | None:
        """Await one source call; on failure record why each of `fields` is unknown.

        `dated` reads the source's own timestamp out of the answer: the evidence's age is
        that of the data, not of the fetch."""
        if source not in self.called:
            self.called.append(source)
        try:
            value = await call
        except SourceError as exc:
            for name in fields:
                self.missing.setdefault(name, f"{exc.source} could not be fetched: {exc.reason}")
            return None
        self.ok.add(source)
        when = dated(value) if dated is not None else None
        for i, ev in enumerate(self.evidence):
            if ev.source == source and ev.url == url:
                if when is not None and (ev.data_as_of is None or when < ev.data_as_of):
                    self.evidence[i] = ev.model_copy(update={"data_as_of": when})
                break
        else:
            self.evidence.append(
                Evidence(source=source, url=url, fetched_at=utcnow(), data_as_of=when)
            )
        return value

    def lack(self, name: str, why: str) -> None:
        self.missing.setdefault(name, why)

    def fill_unreported(self, result: ToolResult, fields: dict[str, str]) -> None:
        """Any field still None gets a reason: its source answered without it."""
        for name, source in fields.items():
            if getattr(result, name) is None and name not in self.missing and source in self.ok:
                self.missing[name] = f"{source} did not report it"

    def finish(self, result: ToolResult) -> None:
        result.evidence = list(self.evidence)
        result.missing = dict(self.missing)
        result.sources_failed = [s for s in self.called if s not in self.ok]
        as_of = section_as_of(self.evidence)
        if as_of is not None:
            result.as_of = as_of


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One live run of a tool: its result and what it cost."""

    result: Any  # a ToolResult subclass
    called: list[str]
    ok: set[str]

    @property
    def all_failed(self) -> bool:
        return bool(self.called) and not self.ok
