"""The `chainlens` command line: serve, migrate, doctor, and the commands each part adds."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from chainlens.settings import Settings, load_settings

T = TypeVar("T")
log = logging.getLogger("chainlens")


def run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    return asyncio.run(fn(*args))  # type: ignore[arg-type]


def settings_from_env(**overrides: object) -> Settings:
    from chainlens.logs import configure_logging

    settings = load_settings(**overrides)
    configure_logging(settings)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """ChainLens: crypto project research in Telegram, Discord and the web.

    With no DATABASE_URL / REDIS_URL set, embedded PostgreSQL and Redis are started under
    CHAINLENS_DATA_DIR (default ~/.chainlens) and reused across runs.
    """


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default: HOST or 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: PORT or 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Run the web API and chat widget, plus the Telegram/Discord bots whose tokens are set."""
    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = settings_from_env(**overrides)
    from chainlens.serve import serve_forever

    asyncio.run(serve_forever(settings))
    # Everything is closed; skip collecting the whole import graph at interpreter exit
    # (about a second of Ctrl-C-to-prompt time).
    gc.freeze()


@main.command()
def migrate() -> None:
    """Apply pending database migrations (also done by `serve` on start)."""
    settings = settings_from_env()

    async def _run() -> list[str]:
        from chainlens.deps import open_deps
        from chainlens.migrate import apply_migrations

        async with open_deps(settings, migrate=False) as deps:
            return await apply_migrations(deps.db)

    applied = asyncio.run(_run())
    click.echo("applied: " + ", ".join(applied) if applied else "database is up to date")


@main.command()
def doctor() -> None:
    """Check every dependency: configured or not, reachable or not."""
    settings = settings_from_env()

    async def _run() -> str:
        from chainlens.deps import open_deps
        from chainlens.doctor import render_table, run_checks
        from chainlens.logs import secret_values

        async with open_deps(settings) as deps:
            table = render_table(await run_checks(deps))
        for secret in secret_values(settings):
            if len(secret) >= 8:
                table = table.replace(secret, "**********")
        return table

    click.echo(asyncio.run(_run()))


def _register_optional_commands() -> None:
    """Commands owned by other packages (analyze, ask, plan, cache ...)."""
    import importlib

    for module_name in ("tools.cli", "agent.cli", "billing.cli", "reports.cli"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        for command in getattr(module, "COMMANDS", ()):
            main.add_command(command)


_register_optional_commands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
