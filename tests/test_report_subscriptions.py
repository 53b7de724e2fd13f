"""The report subscription store, against the run's real PostgreSQL."""

from __future__ import annotations

from billing.accounts import account_for_identity
from chainlens.deps import Deps
from reports.subscriptions import (
    confirm,
    get_subscription,
    subscribe,
    subscriptions_of,
    unsubscribe,
)


async def test_subscribe_is_idempotent_and_unsubscribe_keeps_the_reason(deps: Deps) -> None:
    account = await account_for_identity(deps, "telegram:77")
    sub, changed = await subscribe(
        deps, account_id=account.id, channel="telegram", destination="-1001"
    )
    assert changed and sub.receiving
    again, changed = await subscribe(
        deps, account_id=account.id, channel="telegram", destination="-1001"
    )
    assert not changed and again.id == sub.id

    assert await unsubscribe(deps, channel="telegram", destination="-1001", reason="blocked")
    assert not await unsubscribe(deps, channel="telegram", destination="-1001")
    gone = await get_subscription(deps, channel="telegram", destination="-1001")
    assert gone is not None and not gone.active and gone.deactivated_reason == "blocked"

    back, changed = await subscribe(
        deps, account_id=account.id, channel="telegram", destination="-1001"
    )
    assert changed and back.receiving and back.deactivated_reason is None


async def test_email_needs_confirmation(deps: Deps) -> None:
    account = await account_for_identity(deps, "web:ann@example.com")
    sub, _ = await subscribe(
        deps,
        account_id=account.id,
        channel="email",
        destination=" Ann@Example.com ",
        confirmed=False,
    )
    assert sub.destination == "ann@example.com" and not sub.receiving
    # subscribing again before confirming does not confirm it
    sub, _ = await subscribe(
        deps, account_id=account.id, channel="email", destination="ann@example.com", confirmed=False
    )
    assert not sub.confirmed
    confirmed = await confirm(deps, channel="email", destination="ANN@example.com")
    assert confirmed is not None and confirmed.receiving
    assert [s.destination for s in await subscriptions_of(deps, account.id)] == ["ann@example.com"]
    assert await confirm(deps, channel="email", destination="nobody@example.com") is None
