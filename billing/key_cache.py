"""Recently authenticated API keys, kept briefly in this process.

An API client sends many requests a second, and each would otherwise read PostgreSQL to turn
its key into an account. An entry lives `API_KEY_CACHE_S` seconds (settings; 0 turns the
cache off). Revoking a key, recomputing an account's tier or recording its Stripe customer in
this process forgets the entries at once; another process (a second replica) sees the change
within that time. (A request in this process that reads the account while the changing
transaction is still open may cache the old row; that too is bounded by the same time.) Only
live keys are cached, so an unknown or revoked key always reaches PostgreSQL.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from billing.accounts import Account

MAX_ENTRIES = 10_000

# key hash -> (expires at, key id, account)
_entries: dict[str, tuple[float, int, Account]] = {}


def get(key_hash: str) -> tuple[int, Account] | None:
    entry = _entries.get(key_hash)
    if entry is None:
        return None
    if entry[0] <= time.monotonic():
        _entries.pop(key_hash, None)
        return None
    return entry[1], entry[2]


def put(key_hash: str, key_id: int, account: Account, ttl_s: float) -> None:
    if ttl_s <= 0:
        return
    if len(_entries) >= MAX_ENTRIES:
        _entries.pop(next(iter(_entries)))  # the oldest insertion
    _entries[key_hash] = (time.monotonic() + ttl_s, key_id, account)


def forget_key(key_id: int) -> None:
    for key_hash in [h for h, (_, kid, _) in _entries.items() if kid == key_id]:
        _entries.pop(key_hash, None)


def forget_account(account_id: int) -> None:
    for key_hash in [h for h, (_, _, acc) in _entries.items() if acc.id == account_id]:
        _entries.pop(key_hash, None)
