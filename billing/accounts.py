"""Accounts and the identities that reach them, plus one-time link codes between channels.

An account is a `users` row; every channel identity (`telegram:<id>`, `discord:<id>`,
`web:<email>`, `web-anon:<session id>`) points at exactly one account. First contact creates a
free account. Billing keeps no account cache: each call reads PostgreSQL (one indexed query),
so a tier change or a merge is seen by every channel on its next request.

Errors: `InvalidIdentity`, `AccountNotFound`, `LinkCodeInvalid` (see `billing.errors`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import asyncpg
from redis.exceptions import RedisError

from billing.errors import AccountNotFound, InvalidIdentity, LinkCodeInvalid
from billing.merge import merge_accounts
from billing.tiers import recompute_tier
from chainlens.deps import Deps
from chainlens.settings import TIER_NAMES, Settings, TierLimits, TierName

log = logging.getLogger(__name__)

LINK_CODE_TTL = timedelta(minutes=10)
LINK_ATTEMPTS_PER_WINDOW = 10
_LINK_ATTEMPT_WINDOW_S = 600
# No 0/O, 1/I/L: codes are read off one screen and typed into another.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_CODE_LENGTH = 8
_MAX_MERGE_HOPS = 16

_IDENTITY_PATTERNS = {
    "telegram": re.compile(r"-?\d{1,20}"),
    "discord": re.compile(r"\d{1,20}"),
    "web": re.compile(r"[^@\s:]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}"),
    "web-anon": re.compile(r"[A-Za-z0-9_-]{16,64}"),
    "api-key": re.compile(r"\d{1,19}"),  # resolved through api_keys, never created here
}


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    tier: TierName
    email: str | None = None
    daily_limit: int | None = None
    minute_limit: int | None = None
    stripe_customer_id: str | None = None
    # The saved language choice ('en', 'vi') or None (see chainlens.i18n, agent.language).
    language: str | None = None

    def limits(self, settings: Settings) -> TierLimits:
        """The account's own limits where set (enterprise), else its tier's defaults."""
        default = settings.limits_for(self.tier)
        return TierLimits(
            daily=self.daily_limit or default.daily, minute=self.minute_limit or default.minute
        )


def normalize_identity(identity: str) -> str:
    """Validate `<kind>:<id>` and return its canonical form (emails lower-cased)."""
    kind, sep, value = identity.strip().partition(":")
    pattern = _IDENTITY_PATTERNS.get(kind)
    if not sep or pattern is None or not pattern.fullmatch(value):
        raise InvalidIdentity(f"not a valid identity: {identity[:80]!r}")
    return f"{kind}:{value.lower()}" if kind == "web" else f"{kind}:{value}"


def identity_kind(identity: str) -> str:
    return identity.partition(":")[0]


def _account(row: asyncpg.Record) -> Account:
    return Account(
        id=int(row["id"]),
        tier=cast(TierName, row["tier"]),
        email=row["email"],
        daily_limit=row["daily_limit"],
        minute_limit=row["minute_limit"],
        stripe_customer_id=row["stripe_customer_id"],
        language=row.get("language"),
    )


async def _live_user_id(conn: asyncpg.Connection | asyncpg.Pool, account_id: int) -> int:
    """Follow `merged_into` to the account that now owns everything."""
    current = account_id
    for _ in range(_MAX_MERGE_HOPS):
        nxt = await conn.fetchrow("SELECT merged_into FROM users WHERE id = $1", current)
        if nxt is None:
            raise AccountNotFound(f"no account {account_id}")
        if nxt["merged_into"] is None:
            return current
        current = int(nxt["merged_into"])
    raise AccountNotFound(f"account {account_id} has a merge cycle")


async def get_account(deps: Deps, account_id: int) -> Account:
    """The live account for an id (following merges); `AccountNotFound` if none."""
    row = await deps.db.fetchrow("SELECT * FROM users WHERE id = $1", account_id)
    if row is None:
        raise AccountNotFound(f"no account {account_id}")
    return await live_account_of_row(deps, row)


async def live_account_of_row(deps: Deps, row: asyncpg.Record) -> Account:
    """The account for a `users` row, or the account it was merged into."""
    if row["merged_into"] is None:
        return _account(row)
    live = await _live_user_id(deps.db, int(row["merged_into"]))
    merged = await deps.db.fetchrow("SELECT * FROM users WHERE id = $1", live)
    if merged is None:
        raise AccountNotFound(f"no account {live}")
    return _account(merged)


class _LostRace(Exception):
    """Another request created the same identity first; roll back and read theirs."""


async def account_for_identity(deps: Deps, identity: str) -> Account:
    """The account behind an identity, creating a free account on first contact."""
    identity = normalize_identity(identity)
    if identity_kind(identity) == "api-key":
        owner = await deps.db.fetchval(
            "SELECT user_id FROM api_keys WHERE id = $1 AND revoked_at IS NULL", int(identity[8:])
        )
        if owner is None:
            raise AccountNotFound("API key unknown or revoked")
        return await get_account(deps, int(owner))
    for _ in range(3):
        row = await deps.db.fetchrow(
            "SELECT u.* FROM identities i JOIN users u ON u.id = i.user_id WHERE i.identity = $1",
            identity,
        )
        if row is not None:
            return _account(row)
        try:
            return await _create_for_identity(deps, identity)
        except _LostRace:
            continue
    raise RuntimeError(f"could not create an account for {identity_kind(identity)} identity")


async def _create_for_identity(deps: Deps, identity: str) -> Account:
    email = identity[4:] if identity_kind(identity) == "web" else None
    async with deps.db.acquire() as conn, conn.transaction():
        user_id = None
        if email is not None:
            user_id = await conn.fetchval(
                "SELECT id FROM users WHERE email = $1 AND merged_into IS NULL", email
            )
        if user_id is None:
            user_id = await conn.fetchval(
                "INSERT INTO users (email) VALUES ($1) ON CONFLICT (email)"
                " DO UPDATE SET updated_at = now() RETURNING id",
                email,
            )
        inserted = await conn.fetchval(
            "INSERT INTO identities (identity, user_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING user_id",
            identity,
            user_id,
        )
        if inserted is None:
            raise _LostRace
        row = await conn.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
    log.info("created account %s for a new %s identity", user_id, identity_kind(identity))
    return _account(row)


async def identities_of(deps: Deps, account_id: int) -> list[str]:
    """Every identity attached to an account, sorted."""
    rows = await deps.db.fetch(
        "SELECT identity FROM identities WHERE user_id = $1 ORDER BY identity", account_id
    )
    return [r["identity"] for r in rows]


async def set_base_tier(
    deps: Deps,
    account_id: int,
    tier: TierName,
    *,
    daily_limit: int | None = None,
    minute_limit: int | None = None,
) -> Account:
    """Admin: set the account's tier floor (and per-account limits); return the account."""
    if tier not in TIER_NAMES:
        raise ValueError(f"unknown tier {tier!r}")
    async with deps.db.acquire() as conn, conn.transaction():
        live = await _live_user_id(conn, account_id)
        await conn.execute(
            "UPDATE users SET base_tier = $2, daily_limit = $3, minute_limit = $4,"
            " updated_at = now() WHERE id = $1",
            live,
            tier,
            daily_limit,
            minute_limit,
        )
        await recompute_tier(conn, live)
    return await get_account(deps, live)


async def set_language(deps: Deps, account_id: int, language: str | None) -> Account:
    """Save the account's language choice ('en', 'vi'), or clear it with None (then each turn
    follows the message's language, then the platform's hint)."""
    from chainlens.i18n import LANGUAGES  # here: chainlens.i18n pulls in Babel

    if language is not None and language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; choose one of {', '.join(LANGUAGES)}")
    async with deps.db.acquire() as conn, conn.transaction():
        live = await _live_user_id(conn, account_id)
        await conn.execute(
            "UPDATE users SET language = $2, updated_at = now() WHERE id = $1", live, language
        )
    return await get_account(deps, live)


async def language_of_identity(deps: Deps, identity: str) -> str | None:
    """The saved language choice of the account behind an identity; None when none is saved
    or there is no account yet (a read: unlike `account_for_identity`, it creates nothing)."""
    row = await deps.db.fetchrow(
        "SELECT u.id, u.merged_into, u.language FROM identities i JOIN users u "
        "ON u.id = i.user_id WHERE i.identity = $1",
        normalize_identity(identity),
    )
    if row is None:
        return None
    if row["merged_into"] is None:
        return str(row["language"]) if row["language"] else None
    return (await get_account(deps, int(row["id"]))).language


def _code_hash(settings: Settings, code: str) -> str:
    # Keyed hash: a leaked table cannot be brute-forced without the server secret.
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, b"link-code:" + code.encode(), hashlib.sha256).hexdigest()


def _normalize_code(code: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", code.upper())


async def create_link_code(deps: Deps, account: Account) -> str:
    """A one-time code (10 minutes) that attaches another channel's identity to `account`."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
    await deps.db.execute(
        "INSERT INTO link_codes (code_hash, user_id, expires_at) VALUES ($1, $2, now() + $3)",
        _code_hash(deps.settings, raw),
        account.id,
        LINK_CODE_TTL,
    )
    return f"{raw[:4]}-{raw[4:]}"


async def _count_attempt(deps: Deps, identity: str) -> None:
    key = deps.keys("link-attempts", identity)
    try:
        # SET NX EX starts the window with its expiry, INCR keeps it (Redis 6.2 has no
        # EXPIRE NX); MULTI makes the pair atomic.
        pipe = deps.redis.pipeline(transaction=True)
        pipe.set(key, 0, ex=_LINK_ATTEMPT_WINDOW_S, nx=True)
        pipe.incr(key)
        _, attempts = await pipe.execute()
    except (RedisError, OSError):
        # The code space (31^8) and 10-minute expiry still bound guessing without Redis.
        log.warning("link attempt counter unavailable (Redis)")
        return
    if int(attempts) > LINK_ATTEMPTS_PER_WINDOW:
        raise LinkCodeInvalid("too many link attempts; wait a few minutes")


async def redeem_link_code(deps: Deps, identity: str, code: str) -> Account:
    """Attach `identity` to the code's account (merging accounts); return the resulting account."""
    identity = normalize_identity(identity)
    if identity_kind(identity) == "api-key":
        raise InvalidIdentity("an API key is not a channel identity and cannot be linked")
    await _count_attempt(deps, identity)
    code_hash = _code_hash(deps.settings, _normalize_code(code))
    async with deps.db.acquire() as conn, conn.transaction():
        owner = await conn.fetchval(
            "UPDATE link_codes SET used_at = now() WHERE code_hash = $1 AND used_at IS NULL"
            " AND expires_at > now() RETURNING user_id",
            code_hash,
        )
        if owner is None:
            raise LinkCodeInvalid("this link code is unknown, expired or already used")
        owner = await _live_user_id(conn, int(owner))
        current = await conn.fetchval(
            "SELECT user_id FROM identities WHERE identity = $1 FOR UPDATE", identity
        )
        if current is None:
            await conn.execute(
                "INSERT INTO identities (identity, user_id) VALUES ($1, $2)", identity, owner
            )
            kept = owner
        elif int(current) == owner:
            kept = owner
        else:
            kept = await merge_accounts(conn, owner, int(current), via_identity=identity)
            log.info("merged accounts %s and %s into %s", owner, current, kept)
    return await get_account(deps, kept)
