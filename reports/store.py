"""`daily_reports`: one row per date. A rebuild replaces content and chart in one statement and
keeps `delivery_started_at`, so the ledger (not the report) decides who has been sent it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from chainlens.deps import Deps
from reports.content import ReportContent


@dataclass(frozen=True, slots=True)
class StoredReport:
    content: ReportContent
    markdown: str
    chart_png: bytes | None
    builds: int
    created_at: datetime
    updated_at: datetime
    delivery_started_at: datetime | None


def _stored(row: asyncpg.Record) -> StoredReport:
    return StoredReport(
        content=ReportContent.model_validate(row["content"]),
        markdown=row["markdown"],
        chart_png=row["chart_png"],
        builds=row["builds"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        delivery_started_at=row["delivery_started_at"],
    )


async def save_report(deps: Deps, content: ReportContent, chart_png: bytes | None) -> StoredReport:
    """Insert or atomically replace the report of `content.report_date`."""
    from reports.render import report_markdown

    row = await deps.db.fetchrow(
        """
        INSERT INTO daily_reports (report_date, content, markdown, chart_png)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (report_date) DO UPDATE
           SET content = EXCLUDED.content, markdown = EXCLUDED.markdown,
               chart_png = EXCLUDED.chart_png, builds = daily_reports.builds + 1,
               updated_at = now()
        RETURNING *
        """,
        content.report_date,
        content.model_dump(mode="json"),
        report_markdown(content, "full"),
        chart_png,
    )
    assert row is not None
    return _stored(row)


async def get_report(deps: Deps, report_date: date) -> StoredReport | None:
    row = await deps.db.fetchrow("SELECT * FROM daily_reports WHERE report_date = $1", report_date)
    return _stored(row) if row is not None else None


async def list_reports(deps: Deps, limit: int = 60) -> list[tuple[date, str, datetime]]:
    """(date, intro, generated) of the newest reports."""
    rows = await deps.db.fetch(
        "SELECT report_date, content->>'intro' AS intro, updated_at FROM daily_reports "
        "ORDER BY report_date DESC LIMIT $1",
        limit,
    )
    return [(r["report_date"], r["intro"] or "", r["updated_at"]) for r in rows]


async def mark_delivery_started(conn: asyncpg.Connection, report_date: date) -> bool:
    """Record the first broadcast; False when there is no report for the date."""
    result: str = await conn.execute(
        "UPDATE daily_reports SET delivery_started_at = COALESCE(delivery_started_at, now()) "
        "WHERE report_date = $1",
        report_date,
    )
    return result != "UPDATE 0"
