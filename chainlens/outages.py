"""What an unreachable PostgreSQL looks like to asyncpg, in one place.

Used by the web edge (a 503 with Retry-After instead of a 500), the usage writer (keep the
record and write it when the server is back) and the analysis cache (answer without history).
"""

from __future__ import annotations

import asyncpg

# Down, restarting, shutting down or out of connections. A plain `InterfaceError` is
# asyncpg's "connection is closed"; its subclasses (DataError, ...) are bugs, not outages.
# `InternalClientError` is a connection left mid-operation when the server vanished.
POSTGRES_DOWN: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InternalClientError,
)


# Anything a statement can fail with, the server's refusals included: for work that is optional
# (a snapshot read or write) and must not cost the answer.
POSTGRES_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


def postgres_down(exc: BaseException) -> bool:
    """Whether `exc` (raised by asyncpg or a pool call) means PostgreSQL cannot be reached."""
    return isinstance(exc, POSTGRES_DOWN) or type(exc) is asyncpg.InterfaceError
