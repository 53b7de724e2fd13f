"""The delivery ledger (`deliveries`): one row per (message, destination), effectively-once.

States: pending -> sending -> sent | failed | unknown (and sending -> pending when the
platform surely did not take it: a 429, a refused connection, a 5xx). A row is claimed
(`sending`, with the claiming job's id) only once the send limiter granted a slot, right
before the request leaves. A row found in `sending` whose job is no longer running — or that
the same job left there in an earlier, killed attempt — may have arrived: it becomes
`unknown` and is never sent again.

`kind` is `report` (ref = the report date) or `alert` (ref = the alert event id): alerts reuse
this table, the senders and the send job unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from chainlens.deps import Deps

Kind = str  # "report" | "alert"


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    kind: Kind
    ref: str
    subscriber_id: int | None
    channel: str
    destination: str
    edition: str
    state: str
    parts_done: int
    attempts: int
    not_before: datetime | None = None
    language: str = "en"  # fixed when the row was created (see `fan_out_report`)


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        id=row["id"],
        kind=row["kind"],
        ref=row["ref"],
        subscriber_id=row["subscriber_id"],
        channel=row["channel"],
        destination=row["destination"],
        edition=row["edition"],
        state=row["state"],
        parts_done=row["parts_done"],
        attempts=row["attempts"],
        not_before=row["not_before"],
        language=row["language"] or "en",
    )


async def fan_out_report(conn: asyncpg.Connection, report_date: date) -> int:
    """One pending row per receiving subscriber (active and confirmed); existing rows are
    kept as they are (their language too: a language changed between retries sends nothing
    twice). The account's tier picks the edition; the subscription's own language, else the
    account's, else English, the language. Returns rows added."""
    result = await conn.execute(
        """
        INSERT INTO deliveries (kind, ref, subscriber_id, channel, destination, edition,
                                language)
        SELECT 'report', $1, s.id, s.channel, s.destination,
               CASE WHEN u.tier = 'free' THEN 'headline' ELSE 'full' END,
               COALESCE(s.language, u.language, 'en')
          FROM report_subscribers s JOIN users u ON u.id = s.user_id
         WHERE s.active AND s.confirmed_at IS NOT NULL
        ON CONFLICT (kind, ref, channel, destination) DO NOTHING
        """,
        report_date.isoformat(),
    )
    return int(result.split()[-1])


async def open_rows(deps: Deps, kind: Kind, ref: str) -> list[tuple[int, str, str]]:
    """(id, channel, edition) of the rows still pending, in a stable order."""
    rows = await deps.db.fetch(
        "SELECT id, channel, edition FROM deliveries WHERE kind = $1 AND ref = $2 "
        "AND state = 'pending' ORDER BY channel, edition, id",
        kind,
        ref,
    )
    return [(r["id"], r["channel"], r["edition"]) for r in rows]


async def settle_orphans(deps: Deps, ids: list[int], job_id: int) -> int:
    """Rows left `sending` by a dead attempt become `unknown` (they may have arrived)."""
    result = await deps.db.execute(
        """
        UPDATE deliveries d
           SET state = 'unknown', updated_at = now(),
               error = 'the sender stopped while this was in flight; it may have arrived, '
                       || 'so it is not sent again'
         WHERE d.id = ANY($1::bigint[]) AND d.state = 'sending'
           AND (d.claimed_by_job = $2 OR d.claimed_by_job IS NULL OR NOT EXISTS (
                SELECT 1 FROM procrastinate_jobs j
                 WHERE j.id = d.claimed_by_job AND j.status = 'doing'))
        """,
        ids,
        job_id,
    )
    return int(result.split()[-1])


# A row created without a language (an alert firing) gets it fixed on its first load, before
# anything is sent: the subscription's own, else the owning account's (the subscriber's or the
# alert's), else English. From then on every retry renders the same message.
_FIX_LANGUAGE = """
UPDATE deliveries d
   SET language = COALESCE(
         (SELECT COALESCE(s.language, u.language) FROM report_subscribers s
            JOIN users u ON u.id = s.user_id WHERE s.id = d.subscriber_id),
         (SELECT u.language FROM alert_events e JOIN alerts a ON a.id = e.alert_id
            JOIN users u ON u.id = a.user_id
           WHERE e.id = CASE WHEN d.kind = 'alert' THEN d.ref::bigint END),
         'en')
 WHERE d.id = ANY($1::bigint[]) AND d.language IS NULL
"""


async def load(deps: Deps, ids: list[int]) -> list[Delivery]:
    await deps.db.execute(_FIX_LANGUAGE, ids)
    rows = await deps.db.fetch(
        "SELECT * FROM deliveries WHERE id = ANY($1::bigint[]) ORDER BY id", ids
    )
    return [_delivery(r) for r in rows]


async def claim(deps: Deps, ids: list[int], job_id: int) -> list[int]:
    """pending -> sending for those of `ids` still pending and due; returns the claimed ids.
    A row whose subscription was deactivated since the fan-out is failed instead."""
    return [delivery_id for delivery_id, _ in await _claim(deps, ids, job_id)]


async def claim_one(deps: Deps, delivery_id: int, job_id: int) -> int | None:
    """Claim one row; its `parts_done` (the next part to send), or None when not claimed."""
    claimed = await _claim(deps, [delivery_id], job_id)
    return claimed[0][1] if claimed else None


async def _claim(deps: Deps, ids: list[int], job_id: int) -> list[tuple[int, int]]:
    # One statement (one round trip): rows whose subscription was deactivated since the
    # fan-out are failed, the others still pending and due become `sending`.
    rows = await deps.db.fetch(
        """
        WITH gone AS (
            UPDATE deliveries d SET state = 'failed', error = 'unsubscribed before delivery',
                   updated_at = now()
              FROM report_subscribers s
             WHERE d.id = ANY($1::bigint[]) AND d.state = 'pending' AND d.kind = 'report'
               AND s.id = d.subscriber_id AND NOT s.active
            RETURNING d.id)
        UPDATE deliveries SET state = 'sending', claimed_by_job = $2,
               attempts = attempts + 1, updated_at = now()
         WHERE id = ANY($1::bigint[]) AND state = 'pending'
           AND (not_before IS NULL OR not_before <= now())
           AND id NOT IN (SELECT id FROM gone)
        RETURNING id, parts_done
        """,
        ids,
        job_id,
    )
    return [(r["id"], r["parts_done"]) for r in rows]


async def part_done(deps: Deps, delivery_id: int, parts_done: int) -> None:
    """A part arrived and more remain: back to pending with the progress recorded, so whoever
    claims it next (this job, after its next slot) sends only the remaining parts."""
    await deps.db.execute(
        "UPDATE deliveries SET parts_done = $2, state = 'pending', not_before = NULL, "
        "updated_at = now() WHERE id = $1 AND state = 'sending'",
        delivery_id,
        parts_done,
    )


async def mark_sent(deps: Deps, ids: list[int]) -> None:
    await deps.db.execute(
        "UPDATE deliveries SET state = 'sent', sent_at = now(), updated_at = now(), error = NULL "
        "WHERE id = ANY($1::bigint[]) AND state = 'sending'",
        ids,
    )


async def release(deps: Deps, ids: list[int], *, reason: str, after_s: float) -> None:
    """sending -> pending: the platform surely did not take it; due again after `after_s`."""
    await deps.db.execute(
        """
        UPDATE deliveries SET state = 'pending', error = $2, updated_at = now(),
               not_before = now() + make_interval(secs => $3)
         WHERE id = ANY($1::bigint[]) AND state = 'sending'
        """,
        ids,
        reason[:500],
        float(after_s),
    )


async def mark_final(deps: Deps, ids: list[int], state: str, reason: str) -> None:
    assert state in ("failed", "unknown")
    await deps.db.execute(
        "UPDATE deliveries SET state = $2, error = $3, updated_at = now() "
        "WHERE id = ANY($1::bigint[]) AND state = 'sending'",
        ids,
        state,
        reason[:500],
    )


async def state_counts(deps: Deps, kind: Kind, ref: str) -> dict[str, dict[str, int]]:
    """channel -> state -> rows."""
    rows = await deps.db.fetch(
        "SELECT channel, state, count(*)::int AS n FROM deliveries WHERE kind = $1 AND ref = $2 "
        "GROUP BY channel, state",
        kind,
        ref,
    )
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["channel"], {})[r["state"]] = r["n"]
    return out
