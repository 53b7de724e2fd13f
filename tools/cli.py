"""`chainlens analyze PROJECT` and `chainlens cache warm`."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from tools.results import TOOL_NAMES, ToolName

if TYPE_CHECKING:  # tools.analysis pulls in the whole data stack; the CLI imports it late
    from tools.analysis import ToolOutcome


def _parse_tools(raw: str | None) -> tuple[ToolName, ...]:
    if not raw:
        return TOOL_NAMES
    names = [t.strip().lower() for t in raw.split(",") if t.strip()]
    unknown = [n for n in names if n not in TOOL_NAMES]
    if unknown:
        raise click.BadParameter(
            f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOL_NAMES)}",
            param_hint="--tools",
        )
    return tuple(dict.fromkeys(n for n in names if n in TOOL_NAMES))


def _human(outcomes: Mapping[ToolName, ToolOutcome], display: str) -> str:
    lines = [display, "=" * len(display)]
    for tool, outcome in outcomes.items():
        result = outcome.result
        age = f", {result.age_seconds / 60:.0f} min old" if result.stale else ""
        lines.append(f"\n[{tool}] ({outcome.cache}{age})")
        lines.extend(f"  - {fact}" for fact in result.key_facts())
        lines.extend(f"  ! {risk}" for risk in result.risks())
        lines.extend(f"  ? {field}: {why}" for field, why in result.missing.items())
        if result.evidence:
            lines.append("  sources: " + ", ".join(sorted({e.url for e in result.evidence})))
    return "\n".join(lines)


@click.command()
@click.argument("project")
@click.option(
    "--tools",
    "tools_csv",
    default=None,
    help="Comma-separated: onchain,sentiment,tokenomics,team (default: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--refresh", is_flag=True, help="Skip the cache and fetch live data.")
def analyze(project: str, tools_csv: str | None, as_json: bool, refresh: bool) -> None:
    """Analyse a project (name, ticker or CoinGecko id) with the chosen tools."""
    from chainlens.cli import settings_from_env

    tools = _parse_tools(tools_csv)
    settings = settings_from_env()

    async def run() -> int:
        from chainlens.deps import open_deps
        from tools.analysis import analyze as analyze_project
        from tools.resolve import resolve_project

        async with open_deps(settings) as deps:
            click.echo(f"resolving {project!r}…", err=True)
            resolution = await resolve_project(deps, project)
            if resolution.project is None:
                click.echo(f"no project matches {project!r}", err=True)
                for s in resolution.suggestions[:5]:
                    click.echo(f"  did you mean: {s.display} — id {s.id}", err=True)
                return 2
            target = resolution.project
            click.echo(f"analysing {target.display} with {', '.join(tools)}…", err=True)
            outcomes = await analyze_project(deps, target, tools, refresh=refresh)
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "project": target.model_dump(mode="json"),
                            "results": {
                                t: {
                                    "cache": o.cache,
                                    "services_called": o.services_called,
                                    **o.result.model_dump(mode="json"),
                                }
                                for t, o in outcomes.items()
                            },
                        },
                        indent=2,
                    )
                )
            else:
                click.echo(_human(dict(outcomes), target.display))
            return 0

    sys.exit(asyncio.run(run()))


@click.group()
def cache() -> None:
    """Manage the analysis cache."""


@cache.command()
@click.option("--limit", default=20, show_default=True, help="How many projects to warm.")
def warm(limit: int) -> None:
    """Pre-fetch the most queried and trending projects into the cache."""
    from chainlens.cli import settings_from_env

    settings = settings_from_env()

    async def run() -> dict[str, Any]:
        from chainlens.deps import open_deps
        from tools.warm import warm_cache

        async with open_deps(settings) as deps:
            return await warm_cache(deps, limit=limit)

    warmed = asyncio.run(run())
    for project_id, layers in warmed.items():
        click.echo(f"{project_id}: " + ", ".join(f"{t}={layer}" for t, layer in layers.items()))
    click.echo(f"warmed {len(warmed)} project(s)", err=True)


COMMANDS = [analyze, cache]
