"""Who receives the daily report: one row per (channel, destination) in `report_subscribers`.

Shared by every channel: Telegram's and Discord's `/alpha`, the web's subscribe form and
account page, and the delivery jobs (which deactivate a destination that can no longer be
reached, with the reason). A destination is a Telegram chat id, a Discord channel id or an
e-mail address; the account is the one that subscribed it (its tier picks the report's
edition). E-mail subscriptions start unconfirmed (double opt-in) and receive nothing until
confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from chainlens.deps import Deps
from chainlens.i18n import LANGUAGES, as_language

ReportChannel = Literal["telegram", "discord", "email"]


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    account_id: int
    channel: ReportChannel
    destination: str
    active: bool
    confirmed: bool
    deactivated_reason: str | None
    created_at: datetime
    # the report's language chosen for this destination (a group, a channel, an address);
    # None follows the owning account's language, then English
    language: str | None = None

    @property
    def receiving(self) -> bool:
        return self.active and self.confirmed


_COLUMNS = (
    "id, user_id, channel, destination, active, confirmed_at IS NOT NULL AS confirmed, "
    "deactivated_reason, created_at, language"
)


def _row(row: asyncpg.Record) -> Subscription:
    return Subscription(
        id=row["id"],
        account_id=row["user_id"],
        channel=row["channel"],
        destination=row["destination"],
        active=row["active"],
        confirmed=row["confirmed"],
        deactivated_reason=row["deactivated_reason"],
        created_at=row["created_at"],
        language=row["language"],
    )


def normalise_destination(channel: ReportChannel, destination: str) -> str:
    destination = destination.strip()
    return destination.lower() if channel == "email" else destination


async def subscribe(
    deps: Deps,
    *,
    account_id: int,
    channel: ReportChannel,
    destination: str,
    confirmed: bool = True,
    language: str | None = None,
) -> tuple[Subscription, bool]:
    """Subscribe (or re-activate) a destination; `(subscription, changed)`.

    `changed` is False when it was already active, so a repeated `/alpha` says so instead of
    pretending to subscribe again. An unconfirmed e-mail stays unconfirmed until `confirm`.
    `language` ('en', 'vi') sets the destination's report language; None keeps the one it
    had (none: the account's)."""
    destination = normalise_destination(channel, destination)
    if language is not None and as_language(language) != language:
        raise ValueError(f"unsupported language {language!r}; choose one of {', '.join(LANGUAGES)}")
    async with deps.db.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM report_subscribers WHERE channel = $1 AND destination = $2 "
            "FOR UPDATE",
            channel,
            destination,
        )
        row = await conn.fetchrow(
            f"""
            INSERT INTO report_subscribers (user_id, channel, destination, active, confirmed_at,
                                            language)
            VALUES ($1, $2, $3, true, CASE WHEN $4 THEN now() END, $5)
            ON CONFLICT (channel, destination) DO UPDATE
               SET active = true, user_id = EXCLUDED.user_id, deactivated_reason = NULL,
                   confirmed_at = COALESCE(report_subscribers.confirmed_at,
                                           EXCLUDED.confirmed_at),
                   language = COALESCE(EXCLUDED.language, report_subscribers.language),
                   updated_at = now()
            RETURNING {_COLUMNS}
            """,
            account_id,
            channel,
            destination,
            confirmed,
            language,
        )
    assert row is not None
    changed = before is None or not before["active"]
    return _row(row), changed


async def set_language(
    deps: Deps, *, channel: ReportChannel, destination: str, language: str | None
) -> Subscription | None:
    """Set (or with None clear) a destination's report language; None when not subscribed.
    Deliveries already created keep the language they were created with."""
    if language is not None and as_language(language) != language:
        raise ValueError(f"unsupported language {language!r}; choose one of {', '.join(LANGUAGES)}")
    row = await deps.db.fetchrow(
        f"UPDATE report_subscribers SET language = $3, updated_at = now() "
        f"WHERE channel = $1 AND destination = $2 RETURNING {_COLUMNS}",
        channel,
        normalise_destination(channel, destination),
        language,
    )
    return _row(row) if row is not None else None


async def confirm(deps: Deps, *, channel: ReportChannel, destination: str) -> Subscription | None:
    """Mark a (double opt-in) subscription confirmed; None when there is none."""
    row = await deps.db.fetchrow(
        f"""
        UPDATE report_subscribers
           SET confirmed_at = COALESCE(confirmed_at, now()), updated_at = now()
         WHERE channel = $1 AND destination = $2
        RETURNING {_COLUMNS}
        """,
        channel,
        normalise_destination(channel, destination),
    )
    return _row(row) if row is not None else None


async def unsubscribe(
    deps: Deps, *, channel: ReportChannel, destination: str, reason: str = "unsubscribed"
) -> bool:
    """Deactivate a destination with the reason; False when it was not active (idempotent)."""
    result: str = await deps.db.execute(
        """
        UPDATE report_subscribers
           SET active = false, deactivated_reason = $3, updated_at = now()
         WHERE channel = $1 AND destination = $2 AND active
        """,
        channel,
        normalise_destination(channel, destination),
        reason,
    )
    return result != "UPDATE 0"


async def get_subscription(
    deps: Deps, *, channel: ReportChannel, destination: str
) -> Subscription | None:
    row = await deps.db.fetchrow(
        f"SELECT {_COLUMNS} FROM report_subscribers WHERE channel = $1 AND destination = $2",
        channel,
        normalise_destination(channel, destination),
    )
    return _row(row) if row is not None else None


async def subscriptions_of(deps: Deps, account_id: int) -> list[Subscription]:
    rows = await deps.db.fetch(
        f"SELECT {_COLUMNS} FROM report_subscribers WHERE user_id = $1 ORDER BY id", account_id
    )
    return [_row(r) for r in rows]
