"""Stripe webhooks: verify, apply once, and converge to the right tier in any delivery order.

Idempotency: the event id is inserted into `stripe_events` in the same transaction that
applies it, so ten deliveries (even concurrent ones) change state once.

Ordering: a subscription row is a set of order-independent registers — the newest
subscription snapshot (by event time, then created < updated < deleted, then event id), the
latest paid and failed invoice times, the furthest period end, and a terminal `ended_at` that
nothing clears. The effective status is a function of those registers only, so every ordering
of the same events ends in the same state, and a deleted subscription never grants access again.

Errors: `WebhookRejected` (signature, timestamp, payload), `BillingNotConfigured`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import stripe

from billing import key_cache
from billing.errors import BillingNotConfigured, WebhookRejected
from billing.payments import tier_for_price
from billing.tiers import recompute_tier
from chainlens.deps import Deps
from chainlens.settings import TIER_NAMES, Settings

log = logging.getLogger(__name__)

TOLERANCE_S = 300
_SNAPSHOT_RANK = {
    "customer.subscription.created": 1,
    "customer.subscription.updated": 2,
    "customer.subscription.deleted": 3,
}
_TERMINAL = ("canceled", "incomplete_expired")

Event = dict[str, Any]


def verify_event(settings: Settings, payload: bytes, signature: str | None) -> Event:
    """Check Stripe's signature on the raw body and return the parsed event."""
    if settings.stripe_webhook_secret is None:
        raise BillingNotConfigured("billing not configured")
    secret = settings.stripe_webhook_secret.get_secret_value()
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, TOLERANCE_S)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise WebhookRejected("invalid Stripe signature") from exc
    timestamps = [int(p[2:]) for p in (signature or "").split(",") if p.startswith("t=")]
    # stripe-python only refuses old timestamps; a far-future one is as suspect.
    if not timestamps or timestamps[0] > time.time() + TOLERANCE_S:
        raise WebhookRejected("Stripe signature timestamp is in the future")
    try:
        event = json.loads(payload)
        valid = (
            isinstance(event, dict)
            and isinstance(event.get("id"), str)
            and isinstance(event.get("type"), str)
            and _ts(event.get("created")) is not None
            and isinstance(event.get("data", {}).get("object"), dict)
        )
    except (ValueError, AttributeError):
        valid = False
    if not valid or not isinstance(event, dict):
        raise WebhookRejected("malformed Stripe event")
    return event


async def apply_event(deps: Deps, event: Event) -> str:
    """Apply a verified event once; return what happened ('duplicate', 'ignored', ...)."""
    created = datetime.fromtimestamp(event["created"], UTC)
    handler = _HANDLERS.get(event["type"])
    async with deps.db.acquire() as conn, conn.transaction():
        fresh = await conn.fetchval(
            "INSERT INTO stripe_events (event_id, type, created, outcome) VALUES ($1, $2, $3, '')"
            " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            event["id"],
            event["type"],
            created,
        )
        if fresh is None:
            return "duplicate"
        outcome = await handler(conn, deps.settings, event) if handler else "ignored"
        await conn.execute(
            "UPDATE stripe_events SET outcome = $2 WHERE event_id = $1", event["id"], outcome
        )
    log.info("stripe event %s (%s): %s", event["id"], event["type"], outcome)
    return outcome


# --- field extraction across Stripe API versions ---------------------------------------------


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _first_item(obj: dict[str, Any], key: str) -> dict[str, Any]:
    data = (obj.get(key) or {}).get("data") or []
    return data[0] if data and isinstance(data[0], dict) else {}


def _ts(value: Any) -> datetime | None:
    """A Stripe epoch-seconds field as a time; None when absent or out of any real range."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**37:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _invoice_subscription(inv: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    details = (
        (inv.get("parent") or {}).get("subscription_details")
        or inv.get("subscription_details")
        or {}
    )
    sub_id = _id(inv.get("subscription")) or _id(details.get("subscription"))
    return sub_id, details.get("metadata") or {}


def _invoice_price(inv: dict[str, Any]) -> str | None:
    line = _first_item(inv, "lines")
    return _id(line.get("price")) or ((line.get("pricing") or {}).get("price_details") or {}).get(
        "price"
    )


# --- account and row resolution --------------------------------------------------------------


async def _live(conn: asyncpg.Connection, user_id: int | None) -> int | None:
    for _ in range(16):
        if user_id is None:
            return None
        nxt = await conn.fetchrow("SELECT merged_into FROM users WHERE id = $1", user_id)
        if nxt is None:
            return None
        if nxt["merged_into"] is None:
            return user_id
        user_id = int(nxt["merged_into"])
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def _resolve_account(
    conn: asyncpg.Connection, *, subscription_id: str | None, customer_id: str | None, hinted: Any
) -> int | None:
    if subscription_id:
        found = await conn.fetchval(
            "SELECT user_id FROM subscriptions WHERE stripe_subscription_id = $1", subscription_id
        )
        if found is not None:
            return await _live(conn, int(found))
    live = await _live(conn, _int(hinted))
    if live is not None:
        return live
    if customer_id:
        found = await conn.fetchval(
            "SELECT id FROM users WHERE stripe_customer_id = $1", customer_id
        )
        return await _live(conn, found)
    return None


async def _locked_subscription(
    conn: asyncpg.Connection, user_id: int, sub_id: str, customer_id: str | None, tier: str | None
) -> asyncpg.Record:
    # Lock order matches merges: the user row first, then its subscription.
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
    await conn.execute(
        "INSERT INTO subscriptions"
        " (user_id, stripe_subscription_id, stripe_customer_id, tier, status)"
        " VALUES ($1, $2, $3, $4, 'incomplete') ON CONFLICT (stripe_subscription_id) DO NOTHING",
        user_id,
        sub_id,
        customer_id,
        tier or "pro",
    )
    row = await conn.fetchrow(
        "SELECT * FROM subscriptions WHERE stripe_subscription_id = $1 FOR UPDATE", sub_id
    )
    assert row is not None
    return row


def _effective_status(r: dict[str, Any]) -> str:
    """The status that follows from the registers alone (independent of arrival order)."""
    if r["ended_at"] is not None:
        return "canceled"
    snap, snap_at = r["snapshot_status"], r["snapshot_at"]
    paid, failed = r["last_paid_at"], r["last_failed_at"]
    paid_since = paid is not None and (snap_at is None or paid >= snap_at)
    failed_since = (
        failed is not None
        and (snap_at is None or failed >= snap_at)
        and (paid is None or failed > paid)
    )
    if snap is None:
        return "past_due" if failed_since else ("active" if paid is not None else "incomplete")
    if snap in ("incomplete", "past_due", "unpaid") and paid_since and not failed_since:
        return "active"
    if snap in ("active", "trialing") and failed_since:
        return "past_due"
    return str(snap)


async def _save(conn: asyncpg.Connection, row: asyncpg.Record, changes: dict[str, Any]) -> str:
    regs = dict(row) | changes
    regs["status"] = _effective_status(regs)
    await conn.execute(
        """
        UPDATE subscriptions SET tier = $2, price_id = $3, snapshot_status = $4, snapshot_at = $5,
            snapshot_rank = $6, snapshot_event = $7, last_paid_at = $8, last_failed_at = $9,
            ended_at = $10, current_period_end = $11, status = $12,
            stripe_customer_id = COALESCE(stripe_customer_id, $13), updated_at = now()
        WHERE id = $1
        """,
        row["id"],
        regs["tier"],
        regs["price_id"],
        regs["snapshot_status"],
        regs["snapshot_at"],
        regs["snapshot_rank"],
        regs["snapshot_event"],
        regs["last_paid_at"],
        regs["last_failed_at"],
        regs["ended_at"],
        regs["current_period_end"],
        regs["status"],
        regs["stripe_customer_id"],
    )
    tier = await recompute_tier(conn, int(row["user_id"]))
    return f"{regs['status']}; account tier {tier}"


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b > a) else a


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b < a) else a


# --- handlers --------------------------------------------------------------------------------


async def _on_subscription(conn: asyncpg.Connection, settings: Settings, event: Event) -> str:
    sub = event["data"]["object"]
    sub_id, customer = _id(sub), _id(sub.get("customer"))
    if sub_id is None:
        return "ignored: no subscription id"
    metadata = sub.get("metadata") or {}
    user_id = await _resolve_account(
        conn, subscription_id=sub_id, customer_id=customer, hinted=metadata.get("account_id")
    )
    if user_id is None:
        log.warning("stripe subscription event %s matches no account", event["id"])
        return "unmatched"
    item = _first_item(sub, "items")
    price = _id(item.get("price"))
    tier = tier_for_price(settings, price) or (
        metadata.get("tier") if metadata.get("tier") in TIER_NAMES else None
    )
    row = await _locked_subscription(conn, user_id, sub_id, customer, tier)
    at = datetime.fromtimestamp(event["created"], UTC)
    changes: dict[str, Any] = {}
    key = (at, _SNAPSHOT_RANK[event["type"]], event["id"])
    current = (row["snapshot_at"], row["snapshot_rank"], row["snapshot_event"] or "")
    if row["snapshot_at"] is None or key > current:
        changes.update(
            snapshot_status=sub.get("status"),
            snapshot_at=at,
            snapshot_rank=key[1],
            snapshot_event=event["id"],
        )
        if tier:
            changes.update(tier=tier, price_id=price)
    period_end = _ts(sub.get("current_period_end")) or _ts(item.get("current_period_end"))
    changes["current_period_end"] = _later(row["current_period_end"], period_end)
    if event["type"] == "customer.subscription.deleted" or sub.get("status") in _TERMINAL:
        ended = _ts(sub.get("ended_at")) or _ts(sub.get("canceled_at")) or at
        changes["ended_at"] = _earlier(row["ended_at"], ended)
    return await _save(conn, row, changes)


async def _on_invoice(conn: asyncpg.Connection, settings: Settings, event: Event) -> str:
    inv = event["data"]["object"]
    sub_id, metadata = _invoice_subscription(inv)
    if sub_id is None:
        return "ignored: not a subscription invoice"
    customer = _id(inv.get("customer"))
    user_id = await _resolve_account(
        conn, subscription_id=sub_id, customer_id=customer, hinted=metadata.get("account_id")
    )
    if user_id is None:
        log.warning("stripe invoice event %s matches no account", event["id"])
        return "unmatched"
    price = _invoice_price(inv)
    tier = tier_for_price(settings, price)
    row = await _locked_subscription(conn, user_id, sub_id, customer, tier)
    at = datetime.fromtimestamp(event["created"], UTC)
    changes: dict[str, Any] = {}
    if row["snapshot_at"] is None and tier:
        changes.update(tier=tier, price_id=price)  # until a subscription snapshot says otherwise
    if event["type"] == "invoice.paid":
        changes["last_paid_at"] = _later(row["last_paid_at"], at)
        period_end = _ts((_first_item(inv, "lines").get("period") or {}).get("end"))
        changes["current_period_end"] = _later(row["current_period_end"], period_end)
    else:
        changes["last_failed_at"] = _later(row["last_failed_at"], at)
    return await _save(conn, row, changes)


async def _on_checkout(conn: asyncpg.Connection, settings: Settings, event: Event) -> str:
    session = event["data"]["object"]
    sub_id, customer = _id(session.get("subscription")), _id(session.get("customer"))
    metadata = session.get("metadata") or {}
    hinted = session.get("client_reference_id") or metadata.get("account_id")
    user_id = await _resolve_account(
        conn, subscription_id=sub_id, customer_id=customer, hinted=hinted
    )
    if user_id is None:
        log.warning("stripe checkout %s matches no account", event["id"])
        return "unmatched"
    if customer:
        # Remember the customer so later checkouts and the portal reuse it.
        await conn.execute(
            "UPDATE users SET stripe_customer_id = $2, updated_at = now() WHERE id = $1"
            " AND stripe_customer_id IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM users WHERE stripe_customer_id = $2)",
            user_id,
            customer,
        )
        key_cache.forget_account(user_id)
    if sub_id is None:
        return "customer recorded"
    tier = metadata.get("tier") if metadata.get("tier") in TIER_NAMES else None
    row = await _locked_subscription(conn, user_id, sub_id, customer, tier)
    changes: dict[str, Any] = {}
    if row["snapshot_at"] is None and tier:
        changes["tier"] = tier
    if session.get("payment_status") in ("paid", "no_payment_required"):
        changes["last_paid_at"] = _later(
            row["last_paid_at"], datetime.fromtimestamp(event["created"], UTC)
        )
    return await _save(conn, row, changes)


_HANDLERS: dict[str, Callable[[asyncpg.Connection, Settings, Event], Awaitable[str]]] = {
    "checkout.session.completed": _on_checkout,
    "customer.subscription.created": _on_subscription,
    "customer.subscription.updated": _on_subscription,
    "customer.subscription.deleted": _on_subscription,
    "invoice.paid": _on_invoice,
    "invoice.payment_failed": _on_invoice,
}
