"""Telegram Stars payments for Pro: invoice payloads, recording payments once, expiry.

A Stars subscription is a `subscriptions` row with `source = 'telegram_stars'` for the
account that paid, so the tier comes out of `recompute_tier` exactly as for Stripe. Each
payment (the first and every monthly renewal) is one `telegram_star_payments` row keyed by
`telegram_payment_charge_id`: a redelivered update changes nothing. Renewals push
`current_period_end` forward; a period that ends unrenewed stops granting the tier at once
(`recompute_tier` checks the end) and `expire_stars_subscriptions` closes the row.

Errors: `InvalidStarsPayload`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from billing.accounts import _live_user_id
from billing.tiers import recompute_tier
from chainlens.deps import Deps
from chainlens.settings import Settings, TierName

log = logging.getLogger(__name__)
STARS_CURRENCY = "XTR"
STARS_PERIOD_S = 30 * 24 * 3600  # the only subscription period Telegram accepts


class InvalidStarsPayload(ValueError):
    """An invoice payload we did not sign (or for a tier we do not sell in Stars)."""


def _sign(settings: Settings, body: str) -> str:
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, b"stars:" + body.encode(), hashlib.sha256).hexdigest()[:24]


def invoice_payload(settings: Settings, account_id: int, tier: TierName = "pro") -> str:
    """The invoice payload naming the account that pays (signed; ≤ 128 bytes)."""
    body = f"{tier}:{account_id}"
    return f"{body}:{_sign(settings, body)}"


def read_invoice_payload(settings: Settings, payload: str) -> tuple[int, TierName]:
    """(account id, tier) of a payload we signed; `InvalidStarsPayload` otherwise."""
    tier, _, rest = payload.partition(":")
    account, _, signature = rest.partition(":")
    if (
        tier not in ("pro", "enterprise")
        or not account.isdigit()
        or not hmac.compare_digest(signature, _sign(settings, f"{tier}:{account}"))
    ):
        raise InvalidStarsPayload("unknown invoice payload")
    return int(account), cast(TierName, tier)


@dataclass(frozen=True, slots=True)
class StarsPayment:
    charge_id: str
    account_id: int
    telegram_user_id: int
    tier: TierName
    total_amount: int
    currency: str
    expires_at: datetime
    is_recurring: bool = False
    is_first_recurring: bool = False


async def record_stars_payment(deps: Deps, payment: StarsPayment) -> tuple[TierName, bool]:
    """Apply a payment once: (the account's tier now, whether this call applied it)."""
    async with deps.db.acquire() as conn, conn.transaction():
        user_id = await _live_user_id(conn, payment.account_id)
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
        if await conn.fetchval(
            "SELECT 1 FROM telegram_star_payments WHERE charge_id = $1", payment.charge_id
        ):
            tier = await conn.fetchval("SELECT tier FROM users WHERE id = $1", user_id)
            return cast(TierName, tier), False
        sub_id = await conn.fetchval(
            "SELECT id FROM subscriptions WHERE source = 'telegram_stars'"
            " AND telegram_user_id = $1 AND ended_at IS NULL FOR UPDATE",
            payment.telegram_user_id,
        )
        if sub_id is None:
            sub_id = await conn.fetchval(
                "INSERT INTO subscriptions (user_id, tier, status, current_period_end, source,"
                " telegram_user_id, last_paid_at) VALUES ($1, $2, 'active', $3,"
                " 'telegram_stars', $4, now()) RETURNING id",
                user_id,
                payment.tier,
                payment.expires_at,
                payment.telegram_user_id,
            )
        else:
            await conn.execute(
                "UPDATE subscriptions SET user_id = $2, tier = $3, status = 'active',"
                " current_period_end = GREATEST(current_period_end, $4), last_paid_at = now(),"
                " updated_at = now() WHERE id = $1",
                sub_id,
                user_id,
                payment.tier,
                payment.expires_at,
            )
        inserted = await conn.fetchval(
            "INSERT INTO telegram_star_payments (charge_id, subscription_id, user_id,"
            " telegram_user_id, tier, total_amount, currency, expires_at, is_recurring,"
            " is_first_recurring) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (charge_id) DO NOTHING RETURNING charge_id",
            payment.charge_id,
            sub_id,
            user_id,
            payment.telegram_user_id,
            payment.tier,
            payment.total_amount,
            payment.currency,
            payment.expires_at,
            payment.is_recurring,
            payment.is_first_recurring,
        )
        if inserted is None:  # a concurrent delivery of the same charge won
            raise _Duplicate
        tier = await recompute_tier(conn, user_id)
    log.info("telegram stars payment applied for account %s: tier %s", user_id, tier)
    return tier, True


class _Duplicate(Exception):
    pass


async def apply_stars_payment(deps: Deps, payment: StarsPayment) -> tuple[TierName, bool]:
    """`record_stars_payment`, treating a lost race with the same charge as a duplicate."""
    try:
        return await record_stars_payment(deps, payment)
    except _Duplicate:
        tier = await deps.db.fetchval(
            "SELECT u.tier FROM telegram_star_payments p JOIN users u ON u.id = p.user_id"
            " WHERE p.charge_id = $1",
            payment.charge_id,
        )
        return cast(TierName, tier or "free"), False


async def expire_stars_subscriptions(deps: Deps) -> int:
    """Close Stars subscriptions whose period ended unrenewed and recompute their tiers."""
    async with deps.db.acquire() as conn, conn.transaction():
        users = await conn.fetch(
            "UPDATE subscriptions SET status = 'expired', ended_at = now(), updated_at = now()"
            " WHERE source = 'telegram_stars' AND ended_at IS NULL"
            " AND current_period_end <= now() RETURNING user_id"
        )
        for user_id in sorted({int(r["user_id"]) for r in users}):
            await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            await recompute_tier(conn, user_id)
    if users:
        log.info("expired %d telegram stars subscriptions", len(users))
    return len(users)
