"""Merge two accounts when a link code joins them: the higher tier and paid subscription win.

Everything the merged-away account owned (identities, subscriptions, usage and query logs, API
keys, report subscriptions, alerts, watchlist) moves to the kept account; the old row stays,
pointing at the kept one through `merged_into`, so stale references (webhook metadata,
in-flight usage) still resolve. The merge is recorded in `account_merges`.
"""

from __future__ import annotations

import asyncpg

from billing import key_cache
from billing.tiers import ACCESS_STATUSES, TIER_RANK, higher_tier, recompute_tier

_MOVE_TABLES = (
    "subscriptions",
    "usage_logs",
    "query_logs",
    "api_keys",
    "report_subscribers",
    "alerts",
)


async def _has_paid_subscription(conn: asyncpg.Connection, user_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE user_id = $1 AND ended_at IS NULL"
            " AND status = ANY($2::text[]))",
            user_id,
            list(ACCESS_STATUSES),
        )
    )


async def merge_accounts(
    conn: asyncpg.Connection, owner_id: int, other_id: int, *, via_identity: str | None
) -> int:
    """Merge `other_id` and `owner_id` inside the caller's transaction; return the kept id."""
    rows = await conn.fetch(
        "SELECT * FROM users WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
        [owner_id, other_id],
    )
    by_id = {r["id"]: r for r in rows}
    owner, other = by_id[owner_id], by_id[other_id]

    def score(row: asyncpg.Record, paid: bool, is_owner: bool) -> tuple[int, int, int]:
        return (TIER_RANK[row["tier"]], int(paid), int(is_owner))

    owner_score = score(owner, await _has_paid_subscription(conn, owner_id), True)
    other_score = score(other, await _has_paid_subscription(conn, other_id), False)
    kept, gone = (owner, other) if owner_score >= other_score else (other, owner)
    kept_id, gone_id = kept["id"], gone["id"]

    moved = [
        r["identity"]
        for r in await conn.fetch(
            "UPDATE identities SET user_id = $1 WHERE user_id = $2 RETURNING identity",
            kept_id,
            gone_id,
        )
    ]
    for table in _MOVE_TABLES:
        await conn.execute(f"UPDATE {table} SET user_id = $1 WHERE user_id = $2", kept_id, gone_id)
    # daily usage aggregates (billing/retention.py) add up where both accounts have a row
    await conn.execute(
        """
        INSERT INTO usage_daily AS d (day, user_id, channel, status, requests, cache_hits,
                                      tokens_used, cost_usd)
        SELECT day, $1, channel, status, requests, cache_hits, tokens_used, cost_usd
        FROM usage_daily WHERE user_id = $2
        ON CONFLICT (day, user_id, channel, status) DO UPDATE SET
            requests = d.requests + EXCLUDED.requests,
            cache_hits = d.cache_hits + EXCLUDED.cache_hits,
            tokens_used = d.tokens_used + EXCLUDED.tokens_used,
            cost_usd = d.cost_usd + EXCLUDED.cost_usd
        """,
        kept_id,
        gone_id,
    )
    await conn.execute("DELETE FROM usage_daily WHERE user_id = $1", gone_id)
    await conn.execute("DELETE FROM link_codes WHERE user_id = $1", gone_id)
    # one watchlist: the union (a project on both stays once, with its earlier date)
    await conn.execute(
        "INSERT INTO watchlist_items (user_id, project_id, display, added_at) "
        "SELECT $1, project_id, display, added_at FROM watchlist_items WHERE user_id = $2 "
        "ON CONFLICT (user_id, project_id) DO UPDATE SET added_at = "
        "least(watchlist_items.added_at, EXCLUDED.added_at)",
        kept_id,
        gone_id,
    )
    await conn.execute("DELETE FROM watchlist_items WHERE user_id = $1", gone_id)

    # Unique columns move by clearing the old row first.
    await conn.execute(
        "UPDATE users SET merged_into = $1, email = NULL, stripe_customer_id = NULL,"
        " tier = 'free', base_tier = 'free', updated_at = now() WHERE id = $2",
        kept_id,
        gone_id,
    )
    await conn.execute(
        """
        UPDATE users SET
            email = COALESCE(email, $2),
            stripe_customer_id = COALESCE(stripe_customer_id, $3),
            base_tier = $4,
            daily_limit = COALESCE(daily_limit, $5),
            minute_limit = COALESCE(minute_limit, $6),
            language = COALESCE(language, $7),
            updated_at = now()
        WHERE id = $1
        """,
        kept_id,
        gone["email"],
        gone["stripe_customer_id"],
        higher_tier(kept["base_tier"], gone["base_tier"]),
        gone["daily_limit"],
        gone["minute_limit"],
        gone["language"],
    )
    await recompute_tier(conn, kept_id)
    key_cache.forget_account(gone_id)  # its keys now belong to the kept account
    await conn.execute(
        "INSERT INTO account_merges (kept_user_id, merged_user_id, kept_tier, merged_tier,"
        " identities, via_identity) VALUES ($1, $2, $3, $4, $5, $6)",
        kept_id,
        gone_id,
        kept["tier"],
        gone["tier"],
        moved,
        via_identity,
    )
    return int(kept_id)
