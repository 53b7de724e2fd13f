"""Anonymous web accounts: saved on their first charged request, purged when idle.

A cookieless visitor gets a signed `web-anon:<id>` identity at once, but no rows: until a
request is charged the caller holds a provisional account (id 0) that can be read — quota,
plan, usage — and never charged. `save_anonymous_account` creates the account, at most
`ANON_ACCOUNTS_PER_IP_DAILY` per client network and UTC day. `purge_anonymous_accounts`
removes anonymous accounts nobody has used for 30 days (a periodic job).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from billing.accounts import Account, account_for_identity, identity_kind, live_account_of_row
from billing.errors import InvalidIdentity, TooManyNewAccounts
from billing.quota import consume_limits, refund_decision
from billing.quota_store import Bucket
from chainlens.deps import Deps

log = logging.getLogger(__name__)

ANONYMOUS_KIND = "web-anon"
_PURGE_BATCH = 1000


def provisional_account() -> Account:
    """The account of an anonymous visitor who has not been charged yet (nothing saved)."""
    return Account(id=0, tier="free")


def is_provisional(account: Account) -> bool:
    return account.id <= 0


async def find_account(deps: Deps, identity: str) -> Account | None:
    """The account an identity already has, or None; creates nothing."""
    row = await deps.db.fetchrow(
        "SELECT u.* FROM identities i JOIN users u ON u.id = i.user_id WHERE i.identity = $1",
        identity,
    )
    return await live_account_of_row(deps, row) if row is not None else None


async def save_anonymous_account(deps: Deps, identity: str, *, client_ip: str | None) -> Account:
    """Create (or find) the account of an anonymous identity about to be charged."""
    if identity_kind(identity) != ANONYMOUS_KIND:
        raise InvalidIdentity("only anonymous identities are saved on first charge")
    existing = await find_account(deps, identity)
    if existing is not None:
        return existing
    decision = None
    if client_ip is not None:
        cap = deps.settings.anon_accounts_per_ip_daily
        decision = await consume_limits(deps, Bucket(f"anon-new:{client_ip}", cap, cap))
        if not decision.allowed:
            raise TooManyNewAccounts(decision)
    try:
        return await account_for_identity(deps, identity)
    except BaseException:
        if decision is not None:
            await refund_decision(deps, decision)
        raise


async def purge_anonymous_accounts(deps: Deps, older_than: timedelta = timedelta(days=30)) -> int:
    """Delete anonymous accounts with no activity for `older_than`; return how many.

    Only accounts whose every identity is `web-anon:` and that hold nothing else (no e-mail,
    paid tier, Stripe customer, subscription, API key, report subscription or merge history)
    are removed; their usage rows go with them, query logs lose the account id.
    """
    total = 0
    while True:
        deleted = await deps.db.fetchval(
            """
            WITH idle AS (
                SELECT u.id FROM users u
                WHERE u.email IS NULL AND u.merged_into IS NULL AND u.stripe_customer_id IS NULL
                  AND u.tier = 'free' AND u.base_tier = 'free'
                  AND greatest(u.created_at, u.updated_at) < now() - $1::interval
                  AND EXISTS (SELECT 1 FROM identities i
                              WHERE i.user_id = u.id AND i.identity LIKE 'web-anon:%')
                  AND NOT EXISTS (SELECT 1 FROM identities i
                                  WHERE i.user_id = u.id AND i.identity NOT LIKE 'web-anon:%')
                  AND NOT EXISTS (SELECT 1 FROM usage_logs l
                                  WHERE l.user_id = u.id AND l.created_at >= now() - $1::interval)
                  AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = u.id)
                  AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.user_id = u.id)
                  AND NOT EXISTS (SELECT 1 FROM report_subscribers r WHERE r.user_id = u.id)
                  AND NOT EXISTS (SELECT 1 FROM users m WHERE m.merged_into = u.id)
                  AND NOT EXISTS (SELECT 1 FROM account_merges a
                                  WHERE a.kept_user_id = u.id OR a.merged_user_id = u.id)
                ORDER BY u.id
                LIMIT $2
                FOR UPDATE OF u SKIP LOCKED
            ), gone AS (
                DELETE FROM users WHERE id IN (SELECT id FROM idle) RETURNING id
            )
            SELECT count(*) FROM gone
            """,
            older_than,
            _PURGE_BATCH,
        )
        total += int(deleted)
        if deleted < _PURGE_BATCH:
            break
    if total:
        log.info("purged %d idle anonymous account(s)", total)
    return total
