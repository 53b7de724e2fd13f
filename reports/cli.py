"""`chainlens worker` and `chainlens report build|send|status`."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from chainlens.i18n import DEFAULT_LANGUAGE, LANGUAGES, localizer
from reports.queue import QUEUES


@click.command()
@click.option(
    "--queues",
    "queues_csv",
    default=",".join(QUEUES),
    show_default=True,
    help="Comma-separated queues to work on.",
)
@click.option(
    "--concurrency", type=int, default=None, help="Jobs run at once (default: WORKER_CONCURRENCY)."
)
@click.option("--until-idle", is_flag=True, help="Stop once the queues are empty.")
def worker(queues_csv: str, concurrency: int | None, until_idle: bool) -> None:
    """Run a job worker: scheduled report and cache warming, report delivery."""
    from chainlens.cli import settings_from_env

    queues = [q.strip() for q in queues_csv.split(",") if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown:
        raise click.BadParameter(
            f"unknown queue(s) {', '.join(unknown)}; choose from {', '.join(QUEUES)}",
            param_hint="--queues",
        )
    settings = settings_from_env()

    async def run() -> None:
        from chainlens.deps import open_deps
        from reports.queue import open_queue, run_worker

        async with (
            open_deps(settings) as deps,
            open_queue(deps, max_size=settings.worker_concurrency + 2),
        ):
            click.echo(f"worker on queues {', '.join(queues)}", err=True)
            await run_worker(deps, queues=queues, wait=not until_idle, concurrency=concurrency)

    asyncio.run(run())


@click.group()
def report() -> None:
    """Build, deliver and inspect the daily alpha report."""


@report.command()
@click.option("--date", "day", default=None, help="YYYY-MM-DD (default: today, UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print the report content as JSON.")
@click.option(
    "--lang",
    "language",
    type=click.Choice(LANGUAGES),
    default=DEFAULT_LANGUAGE,
    show_default=True,
    help="Print the report in this language.",
)
def build(day: str | None, as_json: bool, language: str) -> None:
    """Build (or rebuild) the report now and store it; delivery is `report send`."""
    from chainlens.cli import settings_from_env
    from reports.build import report_day

    report_date = report_day(day)
    settings = settings_from_env()

    async def run() -> str:
        from chainlens.deps import open_deps
        from reports.build import build_report
        from reports.store import save_report

        async with open_deps(settings) as deps:
            content, chart = await build_report(deps, report_date)
            stored = await save_report(deps, content, chart)
        if as_json:
            return json.dumps(content.model_dump(mode="json"), indent=2)
        from reports.render import report_markdown

        markdown = report_markdown(content, "full", loc=localizer(language))
        return markdown + f"\n\n(build #{stored.builds}; chart: {'yes' if chart else 'no'})"

    click.echo(asyncio.run(run()))


@report.command()
@click.option("--date", "day", default=None, help="YYYY-MM-DD (default: today, UTC).")
@click.option("--wait", is_flag=True, help="Also run a worker here until everything is sent.")
def send(day: str | None, wait: bool) -> None:
    """Deliver a built report: the same jobs the schedule defers (repeats nobody)."""
    from chainlens.cli import settings_from_env
    from reports.build import report_day

    report_date = report_day(day)
    settings = settings_from_env()

    async def run() -> int:
        from chainlens.deps import open_deps
        from reports.deliver import ReportMissing, broadcast_report
        from reports.queue import open_queue, run_worker

        async with open_deps(settings) as deps, open_queue(deps) as _:
            try:
                summary = await broadcast_report(deps, report_date)
            except ReportMissing as exc:
                click.echo(
                    f"{exc}; run `chainlens report build --date {report_date}` first", err=True
                )
                return 2
            click.echo(
                f"{summary.added} new deliveries; {summary.pending} pending in "
                f"{summary.jobs} send jobs",
                err=True,
            )
            if wait:
                await run_worker(
                    deps,
                    queues=["telegram", "discord", "email"],
                    wait=False,
                    install_signal_handlers=False,
                )
        return 0

    sys.exit(asyncio.run(run()))


@report.command()
@click.option("--date", "day", default=None, help="YYYY-MM-DD (default: today, UTC).")
@click.option(
    "--lang",
    "language",
    type=click.Choice(LANGUAGES),
    default=DEFAULT_LANGUAGE,
    show_default=True,
    help="The subscriber's language.",
)
@click.option(
    "--channel",
    type=click.Choice(["markdown", "telegram", "discord", "email"]),
    default="markdown",
    show_default=True,
    help="Which rendering to show.",
)
@click.option(
    "--edition",
    type=click.Choice(["full", "headline"]),
    default="full",
    show_default=True,
    help="Pro/Enterprise (full) or free (headline).",
)
def preview(day: str | None, language: str, channel: str, edition: str) -> None:
    """Show a built report as a subscriber would get it, without sending anything."""
    from chainlens.cli import settings_from_env
    from reports.build import report_day

    report_date = report_day(day)
    settings = settings_from_env()

    async def run() -> str | None:
        from chainlens.deps import open_deps
        from reports.deliver import ReportMissing, render_report
        from reports.render import report_markdown
        from reports.store import get_report

        loc = localizer(language)
        async with open_deps(settings) as deps:
            if channel == "markdown":
                stored = await get_report(deps, report_date)
                return (
                    None
                    if stored is None
                    else report_markdown(
                        stored.content,
                        "headline" if edition == "headline" else "full",
                        full_url=f"{settings.public_base_url}".rstrip("/")
                        + f"/reports/{report_date.isoformat()}",
                        loc=loc,
                    )
                )
            try:
                rendered = await render_report(deps, report_date.isoformat(), loc)
            except ReportMissing:
                return None
        if channel == "telegram":
            return "\n\n".join(f"[{part.kind}]\n{part.html}" for part in rendered.telegram(edition))
        if channel == "discord":
            return json.dumps(rendered.discord(edition).embeds, indent=2, ensure_ascii=False)
        mail = rendered.email(edition)
        return f"Subject: {mail.subject}\n\n{mail.text}"

    text = asyncio.run(run())
    if text is None:
        click.echo(
            f"no report for {report_date}; run `chainlens report build --date {report_date}` first",
            err=True,
        )
        sys.exit(2)
    click.echo(text)


@report.command()
@click.option("--date", "day", default=None, help="YYYY-MM-DD (default: today, UTC).")
def status(day: str | None) -> None:
    """Deliveries of a report per channel and state."""
    from chainlens.cli import settings_from_env
    from reports.build import report_day

    report_date = report_day(day)
    settings = settings_from_env()

    async def run() -> str:
        from chainlens.deps import open_deps
        from reports.ledger import state_counts
        from reports.store import get_report

        async with open_deps(settings) as deps:
            stored = await get_report(deps, report_date)
            counts = await state_counts(deps, "report", report_date.isoformat())
        if stored is None:
            return f"no report for {report_date}"
        lines = [
            f"report {report_date}: built {stored.updated_at:%Y-%m-%d %H:%M} UTC "
            f"(build #{stored.builds}), delivery "
            + (
                f"started {stored.delivery_started_at:%H:%M} UTC"
                if stored.delivery_started_at
                else "not started"
            )
        ]
        states = ("pending", "sending", "sent", "failed", "unknown")
        lines.append(f"{'channel':<10}" + "".join(f"{s:>9}" for s in states))
        for channel in ("telegram", "discord", "email"):
            row = counts.get(channel, {})
            lines.append(f"{channel:<10}" + "".join(f"{row.get(s, 0):>9}" for s in states))
        return "\n".join(lines)

    click.echo(asyncio.run(run()))


COMMANDS = [worker, report]
