"""What the tools found, in the shapes writers need: facts, risks, sources with their age."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from pydantic import BaseModel

from chainlens.i18n import ENGLISH, N_, Localizer
from tools.results import (
    OnchainResult,
    SentimentResult,
    TeamResult,
    ToolResult,
    utcnow,
)

log = logging.getLogger(__name__)

TOOL_TITLES = {
    "onchain": N_("Market & on-chain"),
    "sentiment": N_("Sentiment"),
    "tokenomics": N_("Tokenomics"),
    "team": N_("Team & development"),
}


def tool_title(tool: str, loc: Localizer = ENGLISH) -> str:
    """The section title of a tool in the localizer's language."""
    return loc._(TOOL_TITLES[tool])


# When a section's data counts as stale: market data moves by the minute, team data by the week.
STALE_AFTER_S: dict[str, float] = {
    "onchain": 15 * 60,
    "sentiment": 6 * 3600,
    "tokenomics": 86400,
    "team": 7 * 86400,
}
# Sources with their own rhythm: the Fear & Greed index is published once a day.
SOURCE_STALE_AFTER_S: dict[str, float] = {"alternative.me": 2 * 86400}


def is_outdated(tool: str, age_seconds: float) -> bool:
    return age_seconds > STALE_AFTER_S.get(tool, 86400)


class Source(BaseModel):
    source: str
    url: str
    age_seconds: float
    stale: bool = False


def facts_of(result: ToolResult, loc: Localizer = ENGLISH) -> list[str]:
    """The tool's own fact sentences; a plain field listing if it has none."""
    try:
        return [f for f in result.key_facts(loc) if f]
    except NotImplementedError:
        log.debug("%s result has no key_facts(); listing its fields", result.tool)
    skip = {
        "tool",
        "project_id",
        "as_of",
        "stale",
        "age_seconds",
        "evidence",
        "missing",
        "price_history",
        "headlines",
        "repos",
        "flags",
        "partnerships",
        "links",
        "lock_ends",
    }
    facts = []
    for name, value in result.model_dump(exclude=skip).items():
        if value is None or value == [] or value == {} or value == "unknown":
            continue
        facts.append(f"{name.replace('_', ' ')}: {value}")
    return facts


def risks_of(result: ToolResult, loc: Localizer = ENGLISH) -> list[str]:
    return [r for r in result.risks(loc) if r]


def data_age_seconds(result: ToolResult, now: datetime | None = None) -> float:
    """How old the result's newest data is now."""
    now = now or utcnow()
    return max(result.age_seconds, (now - result.as_of).total_seconds(), 0.0)


def sources_of(results: Mapping[str, ToolResult], now: datetime | None = None) -> list[Source]:
    """Each distinct source the results cite, with the age of its data."""
    now = now or utcnow()
    ages: dict[tuple[str, str], float] = {}
    limits: dict[tuple[str, str], float] = {}
    from_snapshot: dict[tuple[str, str], bool] = {}
    for tool, result in results.items():
        for ev in result.evidence:
            key = (ev.source, ev.url)
            age = max((now - ev.as_of).total_seconds(), 0.0)
            limit = SOURCE_STALE_AFTER_S.get(ev.source, STALE_AFTER_S.get(tool, 86400))
            # cited by several tools: the freshest reading, judged by the strictest limit
            ages[key] = min(age, ages.get(key, age))
            limits[key] = min(limit, limits.get(key, limit))
            from_snapshot[key] = from_snapshot.get(key, False) or result.stale
    seen = {
        key: Source(
            source=key[0],
            url=key[1],
            age_seconds=round(age, 1),
            stale=from_snapshot[key] or age > limits[key],
        )
        for key, age in ages.items()
    }
    return list(seen.values())


def known_urls(results: Mapping[str, ToolResult]) -> set[str]:
    """Every URL the data carries: the only links an answer may show."""
    urls = {ev.url for r in results.values() for ev in r.evidence}
    for r in results.values():
        if isinstance(r, SentimentResult):
            urls |= {h.url for h in r.headlines}
        if isinstance(r, TeamResult):
            urls |= set(r.audit_links) | set(r.links.values()) | {repo.url for repo in r.repos}
            urls |= {h.url for h in r.partnerships}
    return {u for u in urls if u}


def numeric_fields(results: Mapping[str, ToolResult]) -> list[float]:
    """Every number in the results, for the figure check."""
    values: list[float] = []

    def walk(obj: object) -> None:
        if isinstance(obj, bool):
            return
        if isinstance(obj, int | float):
            values.append(float(obj))
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list | tuple):
            for v in obj:
                walk(v)

    for r in results.values():
        walk(r.model_dump(exclude={"price_history"}))
        walk(data_age_seconds(r) / 60)  # "3 min old"
    return values


def price_history_of(results: Mapping[str, ToolResult]) -> list[tuple[int, float]]:
    onchain = results.get("onchain")
    return list(onchain.price_history) if isinstance(onchain, OnchainResult) else []


def human_age(seconds: float, loc: Localizer = ENGLISH) -> str:
    """'just now', '4 min old', '3 h old', '2 days old' (vi: 'vừa xong', '4 phút trước'…)."""
    return loc.age(seconds)


def headlines_of(results: Mapping[str, ToolResult]) -> Iterable[tuple[str, str, str]]:
    """(title, source, url) of every third-party headline in the results."""
    for r in results.values():
        if isinstance(r, SentimentResult):
            for h in r.headlines:
                yield h.title, h.source, h.url
        if isinstance(r, TeamResult):
            for h in r.partnerships:
                yield h.title, h.source, h.url
