"""The `chainlens` command line: serve, migrate, doctor, and the commands each part adds.

Importing this module imports click and nothing heavy, so `chainlens --help` is quick: each
command imports what it needs when it runs, and the commands other packages add (their
`cli.py` modules' `COMMANDS`) are listed from their source and imported only when one of them
runs or shows its own help.

Log lines: `serve` logs at LOG_LEVEL; every other command shows warnings and errors only,
unless `-v/--verbose` is given (anywhere on the command line).
"""

from __future__ import annotations

import ast
import asyncio
import gc
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Coroutine
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from chainlens.settings import Settings

T = TypeVar("T")
log = logging.getLogger("chainlens")

# Modules whose `COMMANDS` list adds commands (analyze, ask, plan, cache, account ...).
OPTIONAL_COMMAND_MODULES = ("tools.cli", "agent.cli", "billing.cli", "reports.cli")
# Long-running commands log at LOG_LEVEL; the others only when -v is given.
SERVER_COMMANDS = frozenset({"serve", "worker"})
IDENTITY_FORMAT = "telegram:<id>, discord:<id> or web:<email>"
_VERBOSE = "chainlens.verbose"


def run_async(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    return asyncio.run(fn(*args))


def settings_from_env(**overrides: object) -> Settings:
    from chainlens.logs import configure_logging
    from chainlens.settings import load_settings

    settings = load_settings(**overrides)
    configure_logging(settings)
    ctx = click.get_current_context(silent=True)
    if ctx is not None and not _is_verbose(ctx) and ctx.info_name not in SERVER_COMMANDS:
        root = logging.getLogger()
        root.setLevel(max(root.level, logging.WARNING))
    return settings


def _is_verbose(ctx: click.Context) -> bool:
    return bool(ctx.find_root().meta.get(_VERBOSE))


# --- commands from other packages, listed without importing them -----------------------------


def _module_source(module_name: str) -> Path | None:
    """The file of `package.module` found without importing the package (its __init__ may be
    heavy)."""
    package, _, leaf = module_name.rpartition(".")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / f"{leaf}.py"
        if path.exists():
            return path
    return None


@cache
def _listed_commands(module_name: str) -> dict[str, str] | None:
    """{command name: short help} of the module's `COMMANDS`, read from its source; None when
    the source does not follow the convention (then the module is imported instead)."""
    path = _module_source(module_name)
    if path is None:
        return {}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    exported: list[str] | None = None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "COMMANDS"
            and isinstance(node.value, ast.List | ast.Tuple)
            and all(isinstance(e, ast.Name) for e in node.value.elts)
        ):
            exported = [e.id for e in node.value.elts if isinstance(e, ast.Name)]
    if exported is None:
        return None  # COMMANDS written some other way: import the module to find out
    listed: dict[str, str] = {}
    for name in exported:
        function = functions.get(name)
        if function is None:
            return None
        command_name = None
        help_text = ast.get_docstring(function) or ""
        for decorator in function.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            if isinstance(target, ast.Attribute) and target.attr in ("command", "group"):
                # click's default: dashes for underscores, a _command/_cmd/_group/_grp
                # suffix dropped
                command_name = function.name.lower().replace("_", "-")
                left, dash, suffix = command_name.rpartition("-")
                if dash and suffix in {"command", "cmd", "group", "grp"}:
                    command_name = left
                if call and call.args and isinstance(call.args[0], ast.Constant):
                    command_name = str(call.args[0].value)
                for keyword in call.keywords if call else ():
                    if isinstance(keyword.value, ast.Constant) and keyword.arg == "name":
                        command_name = str(keyword.value.value)
                    if isinstance(keyword.value, ast.Constant) and keyword.arg in (
                        "help",
                        "short_help",
                    ):
                        help_text = str(keyword.value.value)
        if command_name is None:
            return None
        listed[command_name] = help_text.split("\n\n")[0].replace("\n", " ").strip()
    return listed


class ChainLensGroup(click.Group):
    """The top-level group: commands of other packages load on demand, `-v` is accepted
    anywhere, and a user's mistake or an unreachable service prints one line, not a
    traceback (-v shows the traceback)."""

    def _lazy(self) -> dict[str, tuple[str, str]]:
        """{command name: (module, short help)} of the not yet imported optional commands."""
        found: dict[str, tuple[str, str]] = {}
        for module_name in OPTIONAL_COMMAND_MODULES:
            if module_name in sys.modules:
                # imported already (maybe not by us): make sure its commands are registered
                self._load(module_name)
                continue
            listed = _listed_commands(module_name)
            if listed is None:
                self._load(module_name)
                continue
            for name, short_help in listed.items():
                if name not in self.commands:
                    found[name] = (module_name, short_help)
        return found

    def _load(self, module_name: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return
            raise
        for command in getattr(module, "COMMANDS", ()):
            if command.name not in self.commands:
                self.add_command(command)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._lazy()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            lazy = self._lazy().get(cmd_name)
            if lazy is not None:
                self._load(lazy[0])
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        lazy = self._lazy()
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
            else:
                # Shortened exactly as click shortens a loaded command's help.
                stand_in = click.Command(name, help=lazy[name][1])
                rows.append((name, stand_in.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:
            end = args.index("--") if "--" in args else len(args)
            flags = [a for a in args[:end] if a in ("-v", "--verbose")]
            if flags:
                args = ["-v"] + [a for a in args[:end] if a not in flags] + args[end:]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:
            message = _one_line_error(exc)
            if message is None or _is_verbose(ctx):
                raise
            raise click.ClickException(message) from exc


def _one_line_error(exc: BaseException) -> str | None:
    """A one-line explanation of an error a user can fix, None for a bug (traceback)."""
    module = type(exc).__module__
    if module.startswith("billing"):
        from billing.errors import BillingError, InvalidIdentity

        if isinstance(exc, InvalidIdentity):
            return f"{exc}; identities look like {IDENTITY_FORMAT}"
        if isinstance(exc, BillingError):
            return str(exc)
    import socket

    driver_connect = module.startswith(("asyncpg", "redis")) and "Connect" in type(exc).__name__
    if driver_connect or isinstance(exc, ConnectionError | socket.gaierror | TimeoutError):
        return (
            f"cannot reach a service: {type(exc).__name__}: {exc}"[:300]
            + " (`chainlens doctor` checks every dependency)"
        )
    return None


@click.group(cls=ChainLensGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show INFO log lines (and tracebacks).")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """ChainLens: crypto project research in Telegram, Discord and the web.

    With no DATABASE_URL / REDIS_URL set, embedded PostgreSQL and Redis are started under
    CHAINLENS_DATA_DIR (default ~/.chainlens), shared by every chainlens process using that
    directory and stopped when the last one exits.
    """
    ctx.meta[_VERBOSE] = verbose


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default: HOST or 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: PORT or 8000).")
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="Web processes sharing the port (default: WEB_WORKERS or 1).",
)
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run the web API and chat widget, plus the Telegram/Discord bots whose tokens are set."""
    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    if workers:
        overrides["web_workers"] = workers
    settings = settings_from_env(**overrides)
    if settings.web_workers > 1:
        from chainlens.supervisor import supervise

        code = asyncio.run(supervise(settings))
        gc.freeze()
        sys.exit(code)
    from chainlens.serve import serve_forever
    from web.server import run_serving

    run_serving(serve_forever(settings))
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
    """Check every dependency: configured or not, reachable or not.

    Exits 1 when PostgreSQL or Redis (required) does not answer."""
    settings = settings_from_env()
    from chainlens.doctor import run_doctor

    table, required_ok = asyncio.run(run_doctor(settings))
    click.echo(table)
    if not required_ok:
        click.echo("a required dependency (PostgreSQL, Redis) is down", err=True)
        sys.exit(1)


def _register_optional_commands() -> None:
    """Import every module of OPTIONAL_COMMAND_MODULES and add its commands to `main.commands`
    (the CLI loads them on demand; code that walks `main.commands` calls this first)."""
    for module_name in OPTIONAL_COMMAND_MODULES:
        main._load(module_name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
