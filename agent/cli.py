"""`chainlens ask "TEXT"` (answer in the terminal) and `chainlens plan "TEXT"|-` (JSON plans)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from agent.events import FinalEvent
    from chainlens.deps import Deps


@click.command()
@click.argument("question")
@click.option("--conversation", default=None, help="Conversation id, for follow-up questions.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the final event as JSON instead of text."
)
@click.option(
    "--raw",
    is_flag=True,
    help="Print the answer's markdown as is (the default when stdout is not a terminal).",
)
def ask(question: str, conversation: str | None, as_json: bool, raw: bool) -> None:
    """Answer QUESTION in the terminal, showing tool progress on stderr.

    In a terminal the answer is rendered (headings, lists, links) once it is complete, with a
    spinner meanwhile; piped, the markdown streams out as it is written."""
    from rich.console import Console
    from rich.markdown import Markdown

    from agent.events import (
        ErrorEvent,
        FinalEvent,
        PlanEvent,
        TextEvent,
        ToolFinishedEvent,
        ToolStartedEvent,
    )
    from agent.stream import answer_stream
    from chainlens.cli import settings_from_env
    from chainlens.deps import open_deps

    settings = settings_from_env()
    out = Console(soft_wrap=False)
    err = Console(stderr=True, highlight=False)
    render = out.is_terminal and not raw and not as_json

    def progress(message: str) -> None:
        err.print(message, markup=False)

    async def _run() -> FinalEvent | None:
        final: FinalEvent | None = None
        interrupted = False
        running: list[str] = []
        with err.status("looking up the project…", spinner="dots") as status:
            async with open_deps(settings) as deps:
                async for event in answer_stream(deps, question, conversation_id=conversation):
                    if isinstance(event, PlanEvent):
                        who = event.project.display if event.project else "no project"
                        tools = ", ".join(event.plan.tools) or "none"
                        progress(f"· {who}: tools {tools} ({event.plan.router})")
                        status.update(
                            "writing the answer…" if not event.plan.tools else f"running {tools}…"
                        )
                    elif isinstance(event, ToolStartedEvent):
                        running.append(event.tool)
                        progress(f"· {event.tool} …")
                    elif isinstance(event, ToolFinishedEvent):
                        if event.tool in running:
                            running.remove(event.tool)
                        state = "ok" if event.ok else "no data"
                        progress(
                            f"· {event.tool} {state} ({event.cache}, {event.elapsed_ms:.0f} ms)"
                        )
                        status.update(
                            f"running {', '.join(running)}…" if running else "writing the answer…"
                        )
                    elif isinstance(event, TextEvent):
                        if not render and not as_json:
                            click.echo(event.text, nl=False)
                    elif isinstance(event, ErrorEvent):
                        progress(f"! {event.message}")
                        interrupted = True
                    elif isinstance(event, FinalEvent):
                        final = event
                        if interrupted and not render and not as_json:
                            # The streamed text stopped mid-way; the final answer replaces it.
                            click.echo("\n\n---\n" + event.answer, nl=False)
        return final

    final = asyncio.run(_run())
    if final is None:
        raise click.ClickException("no answer")
    if as_json:
        click.echo(final.model_dump_json(indent=2))
    elif render:
        out.print(Markdown(final.answer, hyperlinks=True))
    elif not final.answer.endswith("\n"):
        click.echo()
    usage = final.usage
    progress(
        f"· {usage.model}: {usage.tokens_in} in / {usage.tokens_out} out tokens, "
        f"${usage.cost_usd:.6f}, {final.latency_ms:.0f} ms"
    )


async def plan_one(deps: Deps, question: str) -> dict[str, object]:
    """The plan for one question as the JSON object `chainlens plan` prints."""
    from agent.graph import plan_question, resolve_question
    from agent.stream import clean_question

    text = clean_question(question)
    resolution, comparison = await resolve_question(deps, text)
    plan, _ = await plan_question(deps, text, resolution, comparison)
    out: dict[str, object] = {
        "project_id": resolution.project.id if resolution.project else None,
        "tools": sorted(plan.tools),
        "router": plan.router,
    }
    if comparison is not None:
        out["project_ids"] = [p.id for p in comparison.projects]
        if not comparison.ok:
            out["unresolved"] = [u.query for u in comparison.unresolved]
            out["too_many"] = comparison.too_many
    if plan.intent == "market":
        out["market"] = plan.market
        if plan.market == "movers":
            out["window"] = plan.window
    return out


@click.command()
@click.argument("question")
def plan(question: str) -> None:
    """Print which project and tools QUESTION gets, as JSON; "-" reads one question per line."""
    from chainlens.cli import settings_from_env
    from chainlens.deps import open_deps

    settings = settings_from_env()
    questions = (
        [line for line in sys.stdin.read().splitlines() if line.strip()]
        if question == "-"
        else [question]
    )

    async def _run() -> None:
        async with open_deps(settings) as deps:
            for q in questions:
                click.echo(json.dumps(await plan_one(deps, q)))

    asyncio.run(_run())


COMMANDS = [ask, plan]
