"""Admin commands: `chainlens account show IDENTITY`, `chainlens account set-tier IDENTITY TIER`."""

from __future__ import annotations

import asyncio
from typing import cast

import click

from chainlens.settings import TIER_NAMES, TierName


@click.group()
def account() -> None:
    """Inspect and change accounts (admin)."""


@account.command("show")
@click.argument("identity")
def show(identity: str) -> None:
    """Show the account behind IDENTITY (created if new), its identities and quota today."""
    from chainlens.cli import settings_from_env

    settings = settings_from_env()

    async def _run() -> str:
        from billing.accounts import account_for_identity, identities_of
        from billing.quota import quota_status
        from chainlens.deps import open_deps

        async with open_deps(settings) as deps:
            acct = await account_for_identity(deps, identity)
            status = await quota_status(deps, acct)
            ids = await identities_of(deps, acct.id)
        return (
            f"account {acct.id}  tier {acct.tier}  email {acct.email or '-'}\n"
            f"identities: {', '.join(ids)}\n"
            f"today: {status.day_used}/{status.day_limit} requests"
        )

    click.echo(asyncio.run(_run()))


@account.command("set-tier")
@click.argument("identity")
@click.argument("tier", type=click.Choice(TIER_NAMES))
@click.option("--daily-limit", type=int, default=None, help="Per-account daily limit (enterprise).")
@click.option("--minute-limit", type=int, default=None, help="Per-account minute limit.")
def set_tier(identity: str, tier: str, daily_limit: int | None, minute_limit: int | None) -> None:
    """Set the admin tier floor of IDENTITY's account; takes effect on every channel at once."""
    from chainlens.cli import settings_from_env

    settings = settings_from_env()

    async def _run() -> str:
        from billing.accounts import account_for_identity, set_base_tier
        from chainlens.deps import open_deps

        async with open_deps(settings) as deps:
            acct = await account_for_identity(deps, identity)
            # click.Choice(TIER_NAMES) lets only a tier name through
            acct = await set_base_tier(
                deps,
                acct.id,
                cast("TierName", tier),
                daily_limit=daily_limit,
                minute_limit=minute_limit,
            )
        return f"account {acct.id} is now {acct.tier}"

    click.echo(asyncio.run(_run()))


@click.group()
def retention() -> None:
    """Fold old usage and query rows into daily aggregates (RETENTION_DAYS)."""


@retention.command("run")
def retention_run() -> None:
    """Apply retention now (the daily job does the same): fold raw rows older than
    RETENTION_DAYS into daily aggregates and delete them, in batches."""
    from chainlens.cli import settings_from_env

    settings = settings_from_env()

    async def _run() -> str:
        from billing.retention import apply_retention
        from chainlens.deps import open_deps

        async with open_deps(settings) as deps:
            return (await apply_retention(deps)).summary()

    click.echo(asyncio.run(_run()))


COMMANDS = [account, retention]
