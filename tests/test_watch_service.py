"""The watchlist and alert service (reports/watch.py) against the run's real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from billing.accounts import account_for_identity, set_base_tier
from chainlens.deps import Deps
from reports.watch import (
    AlertSpec,
    LimitReached,
    UnknownProject,
    WatchError,
    alerts_of,
    create_alert,
    delete_alert,
    describe,
    parse_alert,
    unwatch,
    watch,
    watchlist,
)


@pytest.mark.parametrize(
    ("text", "query", "spec"),
    [
        ("BTC above 70000", "BTC", AlertSpec("above", 70000.0)),
        ("eth below 3,000", "eth", AlertSpec("below", 3000.0)),
        ("sol move 10%", "sol", AlertSpec("move", 10.0)),
        ("pepe risk", "pepe", AlertSpec("risk", None)),
        ("uni sentiment", "uni", AlertSpec("sentiment", 20.0)),
        ("uni sentiment 15", "uni", AlertSpec("sentiment", 15.0)),
        ("$BTC above $70k", "$BTC", AlertSpec("above", 70000.0)),
        ("shiba inu below 0.00001", "shiba inu", AlertSpec("below", 0.00001)),
        ("ETH goes over 4.5k", "ETH", AlertSpec("above", 4500.0)),
        ("BTC > 100000", "BTC", AlertSpec("above", 100000.0)),
        ("the sandbox under .5", "the sandbox", AlertSpec("below", 0.5)),
    ],
)
def test_parse_alert(text: str, query: str, spec: AlertSpec) -> None:
    assert parse_alert(text) == (query, spec)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "BTC",
        "BTC above",
        "BTC above zero",
        "BTC above 0",
        "sol move 5000%",
        "uni sentiment 500",
        "above 70000",
    ],
)
def test_parse_alert_refuses_with_a_usage_hint(text: str) -> None:
    with pytest.raises(WatchError) as err:
        parse_alert(text)
    assert err.value.message


async def test_watchlist_add_list_remove(deps: Deps) -> None:
    account = await account_for_identity(deps, "telegram:501")
    project, added = await watch(deps, account.id, "$ETH")
    assert project.id == "ethereum" and added
    _, added = await watch(deps, account.id, "ethereum")
    assert not added
    await watch(deps, account.id, "Uniswap")
    assert [(i.project_id, i.display) for i in await watchlist(deps, account.id)] == [
        ("ethereum", "Ethereum (ETH)"),
        ("uniswap", "Uniswap (UNI)"),
    ]
    project, removed = await unwatch(deps, account.id, "ETH")
    assert project.id == "ethereum" and removed
    _, removed = await unwatch(deps, account.id, "eth")
    assert not removed
    assert [i.project_id for i in await watchlist(deps, account.id)] == ["uniswap"]


async def test_watchlist_limit_by_tier(deps: Deps) -> None:
    account = await account_for_identity(deps, "discord:502")
    for coin in ("BTC", "ETH", "SOL", "UNI", "PEPE"):
        await watch(deps, account.id, coin)
    with pytest.raises(LimitReached) as err:
        await watch(deps, account.id, "ARB")
    assert (err.value.kind, err.value.limit, err.value.tier) == ("watchlist", 5, "free")
    assert "5" in err.value.message and "Upgrade" in err.value.message
    # re-adding one already there is not refused
    assert (await watch(deps, account.id, "BTC"))[1] is False
    await set_base_tier(deps, account.id, "pro")
    assert (await watch(deps, account.id, "ARB"))[1] is True


async def test_concurrent_adds_never_pass_the_limit(deps: Deps) -> None:
    account = await account_for_identity(deps, "telegram:503")
    coins = ["BTC", "ETH", "SOL", "UNI", "PEPE", "ARB", "OP", "AVAX"]
    results = await asyncio.gather(
        *(watch(deps, account.id, c) for c in coins), return_exceptions=True
    )
    assert sum(isinstance(r, LimitReached) for r in results) == 3
    assert len(await watchlist(deps, account.id)) == 5


async def test_unknown_project_gets_suggestions(fast_deps: Deps) -> None:
    account = await account_for_identity(fast_deps, "telegram:504")
    with pytest.raises(UnknownProject) as err:
        await watch(fast_deps, account.id, "cardona")
    assert [p.id for p in err.value.suggestions][:1] == ["cardano"]
    assert "Did you mean" in err.value.message
    with pytest.raises(UnknownProject):
        await create_alert(
            fast_deps,
            account.id,
            "cardona",
            AlertSpec("above", 5000.0),
            channel="telegram",
            destination="504",
        )
    assert await watchlist(fast_deps, account.id) == []
    assert await alerts_of(fast_deps, account.id) == []


async def test_alerts_create_list_describe_delete_and_limit(deps: Deps) -> None:
    account = await account_for_identity(deps, "telegram:505")
    btc = await create_alert(
        deps, account.id, "BTC", AlertSpec("above", 70000.0), channel="telegram", destination="505"
    )
    assert describe(btc) == f"#{btc.id} Bitcoin (BTC): price above $70,000 → this chat"
    again = await create_alert(
        deps,
        account.id,
        "bitcoin",
        AlertSpec("above", 70000.0),
        channel="telegram",
        destination="505",
    )
    assert again.id == btc.id  # the same alert is not set twice
    eth = await create_alert(
        deps,
        account.id,
        "eth",
        AlertSpec("move", 10.0),
        channel="email",
        destination=" Ann@Example.com ",
    )
    assert eth.destination == "ann@example.com"
    assert describe(eth).endswith("Ethereum (ETH): a 24 h move of ±10% → ann@example.com")
    await create_alert(
        deps, account.id, "uni", AlertSpec("risk", None), channel="telegram", destination="505"
    )
    with pytest.raises(LimitReached) as err:
        await create_alert(
            deps,
            account.id,
            "sol",
            AlertSpec("below", 100.0),
            channel="telegram",
            destination="505",
        )
    assert (err.value.kind, err.value.limit, err.value.tier) == ("alerts", 3, "free")

    other = await account_for_identity(deps, "telegram:506")
    assert not await delete_alert(deps, other.id, btc.id)  # not theirs
    assert await delete_alert(deps, account.id, btc.id)
    assert not await delete_alert(deps, account.id, btc.id)
    assert [a.id for a in await alerts_of(deps, account.id)] == [eth.id, eth.id + 1]
    # deleting frees a slot
    await create_alert(
        deps, account.id, "sol", AlertSpec("below", 100.0), channel="telegram", destination="505"
    )


async def test_risk_alert_on_a_native_coin_is_refused(deps: Deps) -> None:
    account = await account_for_identity(deps, "telegram:507")
    with pytest.raises(WatchError, match="native coin"):
        await create_alert(
            deps, account.id, "BTC", AlertSpec("risk", None), channel="telegram", destination="507"
        )
    with pytest.raises(WatchError):
        await create_alert(
            deps, account.id, "BTC", AlertSpec("above", 1.0), channel="sms", destination="507"
        )


async def test_linking_two_accounts_merges_watchlists_and_alerts(deps: Deps) -> None:
    from billing.accounts import create_link_code, redeem_link_code

    chat = await account_for_identity(deps, "telegram:508")
    web = await account_for_identity(deps, "web:merge@example.com")
    await watch(deps, chat.id, "BTC")
    await watch(deps, chat.id, "ETH")
    await watch(deps, web.id, "ETH")
    made = await create_alert(
        deps, chat.id, "BTC", AlertSpec("above", 70000.0), channel="telegram", destination="508"
    )
    code = await create_link_code(deps, web)
    kept = await redeem_link_code(deps, "telegram:508", code)
    for account_id in (chat.id, web.id, kept.id):  # either old id reaches the kept account
        assert sorted(i.project_id for i in await watchlist(deps, account_id)) == [
            "bitcoin",
            "ethereum",
        ]
        assert [a.id for a in await alerts_of(deps, account_id)] == [made.id]
