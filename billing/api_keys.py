"""API keys: shown once at creation, stored as sha256, listed by prefix, revocable."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from billing import key_cache
from billing.accounts import Account, live_account_of_row
from chainlens.deps import Deps

KEY_PREFIX = "cl_"
_SHOWN_PREFIX_LEN = 10


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    # The key carries 256 random bits, so a plain (unsalted) hash is not guessable.
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(deps: Deps, account: Account, name: str = "") -> tuple[str, ApiKeyInfo]:
    """Create a key; the returned secret is never retrievable again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = await deps.db.fetchrow(
        "INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4)"
        " RETURNING id, name, prefix, created_at, revoked_at",
        account.id,
        name[:100],
        key[:_SHOWN_PREFIX_LEN],
        hash_key(key),
    )
    return key, ApiKeyInfo(**dict(row))


async def list_api_keys(deps: Deps, account: Account) -> list[ApiKeyInfo]:
    rows = await deps.db.fetch(
        "SELECT id, name, prefix, created_at, revoked_at FROM api_keys WHERE user_id = $1"
        " ORDER BY id",
        account.id,
    )
    return [ApiKeyInfo(**dict(r)) for r in rows]


async def revoke_api_key(deps: Deps, account: Account, key_id: int) -> bool:
    """Revoke one of the account's keys; False if it has no such live key."""
    done = await deps.db.fetchval(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2"
        " AND revoked_at IS NULL RETURNING id",
        key_id,
        account.id,
    )
    key_cache.forget_key(key_id)
    return done is not None


async def account_for_api_key(deps: Deps, key: str) -> tuple[int, Account] | None:
    """(key id, owning account) for a live key, or None (see `billing.key_cache`)."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_hash = hash_key(key)
    cached = key_cache.get(key_hash)
    if cached is not None:
        return cached
    row = await deps.db.fetchrow(
        "SELECT k.id AS key_id, u.* FROM api_keys k JOIN users u ON u.id = k.user_id"
        " WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        key_hash,
    )
    if row is None:
        return None
    key_id, account = int(row["key_id"]), await live_account_of_row(deps, row)
    key_cache.put(key_hash, key_id, account, deps.settings.api_key_cache_s)
    return key_id, account
