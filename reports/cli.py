"""`chainlens worker` and `chainlens report build|send|status`."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from reports.queue import QUEUES


@click.command()
@click.option("--queues", "queues_csv", default=",".join(QUEUES), show_default=True,
              help="Comma-separated queues to work on.")
@click.option("--concurrency", type=int, default=None,
              help="Jobs run at once (default: WORKER_CONCURRENCY).")
@click.option("--until-idle", is_flag=True, help="Stop once the queues are empty.")
def worker(queues_csv: str, concurrency: int | None, until_idle: bool) -> None:
    """Run a job worker: scheduled report and cache warming, report delivery."""
    from chainlens.cli import settings_from_env

    queues = [q.strip() for q in queues_csv.split(",") if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown:
        raise click.BadParameter(f"unknown queue(s) {', '.join(unknown)}; choose from "
                                 f"{', '.join(QUEUES)}", param_hint="--queues")
    settings = settings_from_env()

    async def run() -> None:
        from chainlens.deps import open_deps
        from reports.queue import open_queue, run_worker

        async with open_deps(settings) as deps, open_queue(deps, max_size=settings.worker_concurrency + 2):
            click.echo(f"worker on queues {', '.join(queues)}", err=True)
            await run_worker(deps, queues=queues, wait=not until_idle, concurrency=concurrency)

    asyncio.run(run())


@click.group()
def report() -> None:
    """Build, deliver and inspect the daily alpha report."""


@report.command()
@click.option("--date", "day", default=None, help="YYYY-MM-DD (default: today, UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print the report content as JSON.")
def build(day: str | None, as_json: bool) -> None:
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
        return stored.markdown + f"\n\n(build #{stored.builds}; chart: " \
                                 f"{'yes' if chart else 'no'})"

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
                click.echo(f"{exc}; run `chainlens report build --date {report_date}` first",
                           err=True)
                return 2
            click.echo(f"{summary.added} new deliveries; {summary.pending} pending in "
                       f"{summary.jobs} send jobs", err=True)
            if wait:
                await run_worker(deps, queues=["telegram", "discord", "email"], wait=False,
                                 install_signal_handlers=False)
        return 0

    sys.exit(asyncio.run(run()))


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
        lines = [f"report {report_date}: built {stored.updated_at:%Y-%m-%d %H:%M} UTC "
                 f"(build #{stored.builds}), delivery "
                 + (f"started {stored.delivery_started_at:%H:%M} UTC"
                    if stored.delivery_started_at else "not started")]
        states = ("pending", "sending", "sent", "failed", "unknown")
        lines.append(f"{'channel':<10}" + "".join(f"{s:>9}" for s in states))
        for channel in ("telegram", "discord", "email"):
            row = counts.get(channel, {})
            lines.append(f"{channel:<10}" + "".join(f"{row.get(s, 0):>9}" for s in states))
        return "\n".join(lines)

    click.echo(asyncio.run(run()))


COMMANDS = [worker, report]
