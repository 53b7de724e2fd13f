"""The command line: every command has help; doctor prints its table; compose matches the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from chainlens.cli import _register_optional_commands, main
from chainlens.settings import Settings
from tests.conftest import REPO_ROOT


def test_every_command_has_help() -> None:
    _register_optional_commands()  # the CLI loads other packages' commands on demand
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0, top.output
    for name, command in main.commands.items():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert command.help, f"{name} has no help text"
    assert {"serve", "migrate", "doctor"} <= set(main.commands)


def test_doctor_prints_a_table(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:doctor-secret-token-value")
    # Point every data source at a closed local port: reachable must say NO, not hang.
    for var in (
        "COINGECKO_BASE_URL",
        "DEFILLAMA_BASE_URL",
        "GOPLUS_BASE_URL",
        "GITHUB_API_URL",
        "FEAR_GREED_URL",
    ):
        monkeypatch.setenv(var, "http://127.0.0.1:9/x")
    monkeypatch.setenv("NEWS_FEEDS", "http://127.0.0.1:9/feed.xml")
    monkeypatch.setenv("TELEGRAM_API_BASE", "http://127.0.0.1:9/bot")
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = {line.split("  ")[0].strip(): line for line in result.output.splitlines()}
    assert re.search(r"PostgreSQL\s+yes\s+yes", lines["PostgreSQL"])
    assert re.search(r"Redis\s+yes\s+yes", lines["Redis"])
    assert re.search(r"Telegram\s+yes\s+NO", lines["Telegram"])
    assert re.search(r"Discord\s+no\s+-\s+DISCORD_BOT_TOKEN not set", lines["Discord"])
    assert re.search(r"CoinGecko\s+yes\s+NO", lines["CoinGecko"])
    assert "doctor-secret-token-value" not in result.output


def test_bad_setting_stops_start_up_with_one_line() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "DATABASE_URL": "not-a-url"}
    proc = subprocess.run(
        [sys.executable, "-m", "chainlens.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/tmp",
        check=False,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "invalid setting DATABASE_URL: Value error, must be a postgresql:// URL"
    ]


def test_compose_services_use_real_cli_commands() -> None:
    _register_optional_commands()
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        command = service.get("command")
        if "build" not in service:
            continue  # third-party images (postgres, redis) run their own commands
        argv = command if isinstance(command, list) else command.split()
        assert argv[0] == "chainlens", name
        group = main
        for word in argv[1:]:
            if word.startswith("-"):
                break
            assert word in group.commands, f"{name}: 'chainlens {word}' is not a command"
            group = group.commands[word]
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services
            assert condition["condition"] == "service_healthy"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"```sh\n(.*?)\n```", readme, flags=re.DOTALL)
    assert len(commands) >= 2
    test_command = commands[1].strip()
    assert "pytest" in test_command
    assert "readme_command 2" in ci  # .ci/run executes the README's own line, not a copy


def test_readme_lists_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in readme]
    assert missing == []


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's database and Redis; every data source on a closed local port."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setenv("LLM_MODELS", "")
    for var in (
        "COINGECKO_BASE_URL",
        "DEFILLAMA_BASE_URL",
        "GOPLUS_BASE_URL",
        "GITHUB_API_URL",
        "FEAR_GREED_URL",
        "TELEGRAM_API_BASE",
    ):
        monkeypatch.setenv(var, "http://127.0.0.1:9/x")
    monkeypatch.setenv("NEWS_FEEDS", "http://127.0.0.1:9/feed.xml")
    monkeypatch.setenv("HTTP_TIMEOUT_S", "0.5")


def test_account_show_of_a_malformed_identity_is_one_line(cli_env: None) -> None:
    result = CliRunner().invoke(main, ["account", "show", "nobody"])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "'nobody'" in lines[0]
    for form in ("telegram:<id>", "discord:<id>", "web:<email>"):
        assert form in lines[0]
    assert "Traceback" not in result.output


def test_doctor_with_postgres_down_prints_the_table_and_exits_1(
    cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:9/postgres")
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = {line.split("  ")[0].strip(): line for line in result.stdout.splitlines()}
    assert re.search(r"PostgreSQL\s+yes\s+NO\s+\S", lines["PostgreSQL"])
    assert re.search(r"Redis\s+yes\s+yes", lines["Redis"])
    assert "required dependency" in result.stderr


def test_doctor_with_redis_down_exits_1(cli_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1, result.output
    lines = {line.split("  ")[0].strip(): line for line in result.stdout.splitlines()}
    assert re.search(r"PostgreSQL\s+yes\s+yes", lines["PostgreSQL"])
    assert re.search(r"Redis\s+yes\s+NO", lines["Redis"])


def test_info_logs_only_with_verbose(
    cli_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An embedded Redis (quick to start) logs one INFO line when it starts.
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("CHAINLENS_DATA_DIR", str(tmp_path))
    quiet = CliRunner().invoke(main, ["ask", "hi"])
    assert quiet.exit_code == 0, quiet.output
    assert " INFO " not in quiet.stderr and "embedded Redis running" not in quiet.stderr
    assert quiet.stdout.strip()
    for argv in (["-v", "ask", "hi"], ["ask", "hi", "--verbose"]):
        loud = CliRunner().invoke(main, argv)
        assert loud.exit_code == 0, loud.output
        assert "INFO chainlens.embedded: embedded Redis running" in loud.stderr


def test_help_is_quick_because_it_imports_nothing_heavy() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "chainlens.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    heavy = {
        "pydantic",
        "pydantic_settings",
        "asyncpg",
        "redis",
        "httpx",
        "fastapi",
        "langgraph",
        "litellm",
        "rich",
        "billing",
        "agent.stream",
        "chainlens.settings",
    }
    assert imported & heavy == set()
    # ... and still lists every command with its help, including the other packages' ones.
    commands = dict(re.findall(r"^  (\w[\w-]*)\s{2,}(\S.*)$", proc.stdout, flags=re.MULTILINE))
    assert {"serve", "migrate", "doctor", "ask", "plan", "analyze", "cache", "account"} <= set(
        commands
    )
    assert commands["account"] == "Inspect and change accounts (admin)."


def test_ask_in_a_terminal_renders_markdown(cli_env: None) -> None:
    """In a terminal (a pty here) `ask` prints rendered text, not markdown syntax."""
    import os
    import pty
    import select

    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "chainlens.cli", "ask", "what's SOL trading at?"],
        stdout=follower,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "100"},
    ) as proc:
        os.close(follower)
        screen = b""
        while select.select([leader], [], [], 60)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        os.close(leader)
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0, stderr
    text = screen.decode()
    # every source is on a closed port: the answer says so (and is free), rendered
    assert "Solana (SOL)" in text and "not charged" in text
    assert "## " not in text  # the markdown heading is rendered away
    assert "\x1b[" in text  # as terminal escapes
    assert "· onchain" in stderr


def _docker_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins, `!` re-includes, and a pattern that
    matches a directory excludes everything in it."""

    def regex(pattern: str) -> str:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out, i = out + pattern[i : end + 1], end + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return out

    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        compiled = re.compile(regex(pattern.lstrip("!").strip("/")))
        if any(compiled.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_secrets_venv_and_git_out_of_the_image() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in (
        ".venv/lib/python3.11/site-packages/x.py",
        ".env",
        ".env.production",
        ".git/HEAD",
        "test-artifacts/widget.png",
        ".chainlens/postgres/PG_VERSION",
        "chainlens/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/x",
        "chainlens.egg-info/PKG-INFO",
        "build/lib/chainlens/cli.py",
    ):
        assert _docker_ignored(path, patterns), path
    # ... while the Dockerfile's `pip install -e .` has everything it reads.
    for path in (
        "pyproject.toml",
        "setup.py",
        "README.md",
        "requirements.lock",
        "chainlens/cli.py",
        "web/static/widget.js",
        "web/routes/chat.py",
        "migrations/0001_seed_schema.sql",
        "tools/coin_index.json",
    ):
        assert not _docker_ignored(path, patterns), path
        assert (REPO_ROOT / path).exists(), path


def test_ci_runs_the_redis_tests_again_on_the_embedded_redis() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "CHAINLENS_TEST_EMBEDDED_REDIS=1" in ci
    listed = re.search(r"redis_tests=\((.*?)\)", ci, flags=re.DOTALL)
    assert listed is not None
    files = listed.group(1).split()
    assert files and all((REPO_ROOT / f).exists() for f in files)


def test_commands_listed_from_source_are_the_ones_the_modules_define() -> None:
    """`chainlens --help` lists other packages' commands from their source without importing
    them; the names and help it shows are those of the imported commands."""
    import importlib

    from chainlens.cli import OPTIONAL_COMMAND_MODULES, _listed_commands

    for module_name in OPTIONAL_COMMAND_MODULES:
        listed = _listed_commands(module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            assert listed == {}
            continue
        if listed is None:  # not in the conventional form: the CLI imports it instead
            continue
        actual = {c.name: c.get_short_help_str(1000) for c in getattr(module, "COMMANDS", ())}
        assert {name: _short_help(h) for name, h in listed.items()} == actual, module_name


def _short_help(text: str) -> str:
    import click

    return click.Command("x", help=text).get_short_help_str(1000)
