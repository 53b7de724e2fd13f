"""Build step pyproject.toml cannot express: the wheel carries the top-level `migrations/`
directory as `chainlens/migrations/` (where `chainlens.migrate` looks first), so an installed
ChainLens migrates its database without a checkout. Everything else is in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithMigrations(build_py):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        source = Path(__file__).resolve().parent / "migrations"
        target = Path(self.build_lib) / "chainlens" / "migrations"
        target.mkdir(parents=True, exist_ok=True)
        for sql in sorted(source.glob("*.sql")):
            shutil.copy2(sql, target / sql.name)


setup(cmdclass={"build_py": BuildPyWithMigrations})
