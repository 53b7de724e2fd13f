"""Tier order and the effective tier of an account: max(admin floor, live subscriptions)."""

from __future__ import annotations

from typing import cast

import asyncpg

from billing import key_cache
from chainlens.settings import TIER_NAMES, TierName

TIER_RANK: dict[str, int] = {name: rank for rank, name in enumerate(TIER_NAMES)}
# Subscription statuses that keep paid access. past_due is Stripe's retry window: the
# customer keeps access while Stripe retries the card; `unpaid`/`canceled` end it.
ACCESS_STATUSES = ("active", "trialing", "past_due")


def higher_tier(a: str, b: str) -> TierName:
    """The higher of two tiers."""
    return cast(TierName, a if TIER_RANK[a] >= TIER_RANK[b] else b)


async def recompute_tier(conn: asyncpg.Connection, user_id: int) -> TierName:
    """Set users.tier from base_tier and live subscriptions; return it.
    Caller holds the row lock."""
    tier = await conn.fetchval(
        """
        UPDATE users u SET tier = t.tier, updated_at = now()
        FROM (
            SELECT (ARRAY['free', 'pro', 'enterprise'])[1 + GREATEST(
                array_position(ARRAY['free', 'pro', 'enterprise'], u2.base_tier) - 1,
                COALESCE((SELECT max(array_position(ARRAY['free', 'pro', 'enterprise'], s.tier) - 1)
                          FROM subscriptions s
                          WHERE s.user_id = u2.id AND s.ended_at IS NULL
                            AND s.status = ANY($2::text[])
                            -- a Telegram Stars period ends unless a renewal extended it
                            AND (s.source <> 'telegram_stars'
                                 OR s.current_period_end > now())), 0))] AS tier
            FROM users u2 WHERE u2.id = $1
        ) t
        WHERE u.id = $1
        RETURNING u.tier
        """,
        user_id,
        list(ACCESS_STATUSES),
    )
    key_cache.forget_account(user_id)
    return cast(TierName, tier or "free")
