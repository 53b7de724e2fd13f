"""Free tier per person and per network: aliases fold, networks share a larger allowance,
sign-in e-mails are capped per network and in total, and the network is the real client's."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from chainlens.deps import Deps
from chainlens.settings import Settings, SettingsError, TierLimits, load_settings
from tests.conftest import AppFactory
from tests.fake_http import running_http_server
from tests.fake_sendgrid import API_KEY, FakeSendGrid
from web.auth import SESSION_COOKIE, resolve_client_ip, session_cookie_value


def _signed_in(deps: Deps, email: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={session_cookie_value(deps.settings, f'web:{email}')}"}


async def _ask(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post("/api/chat/query", json={"message": "UNI price?"}, headers=headers)


ROOMY_MINUTE = {
    "free": TierLimits(daily=5, minute=100),
    "pro": TierLimits(daily=1000, minute=10),
    "enterprise": TierLimits(daily=100_000, minute=100),
}


async def test_sub_address_aliases_share_one_free_allowance(
    fast_deps: Deps, make_client: AppFactory
) -> None:
    client = make_client(tier_limits=ROOMY_MINUTE)
    statuses = [
        (await _ask(client, _signed_in(fast_deps, f"mallory+{n}@example.com"))).status_code
        for n in range(6)
    ]
    assert statuses == [200] * 5 + [429]
    # The plain address is the same person too.
    refused = await _ask(client, _signed_in(fast_deps, "Mallory@example.com"))
    assert refused.status_code == 429
    assert "used all 5 requests for today" in refused.json()["error"]["message"]


async def test_six_aliases_in_one_minute_get_one_answer(
    fast_deps: Deps, make_client: AppFactory
) -> None:
    client = make_client()  # the default free tier: 5 a day, 1 a minute
    statuses = [
        (await _ask(client, _signed_in(fast_deps, f"eve+{n}@example.com"))).status_code
        for n in range(6)
    ]
    assert statuses == [200] + [429] * 5


async def test_new_visitor_behind_a_busy_address_is_served(make_client: AppFactory) -> None:
    client = make_client(tier_limits=ROOMY_MINUTE)
    for _ in range(5):
        assert (await _ask(client)).status_code == 200
    assert (await _ask(client)).status_code == 429  # this visitor's own 5 are spent
    client.cookies.clear()
    first = await _ask(client)  # a colleague on the same office address
    assert first.status_code == 200, first.text
    quota = (await client.get("/api/chat/quota")).json()
    assert quota["remaining"] == 4 and quota["limit"] == 5


async def test_signed_in_free_accounts_count_against_their_network(
    fast_deps: Deps, make_client: AppFactory
) -> None:
    client = make_client(tier_limits=ROOMY_MINUTE, free_ip_daily=3)
    people = ["ann", "bob", "cy", "dee"]
    statuses = [
        (await _ask(client, _signed_in(fast_deps, f"{p}@example.com"))).status_code for p in people
    ]
    assert statuses == [200, 200, 200, 429]
    elsewhere = make_client(peer="198.51.100.20", tier_limits=ROOMY_MINUTE, free_ip_daily=3)
    assert (await _ask(elsewhere, _signed_in(fast_deps, "dee@example.com"))).status_code == 200


async def test_paid_accounts_are_not_limited_by_their_network(
    fast_deps: Deps, make_client: AppFactory
) -> None:
    from conftest import paid_api_key

    key = await paid_api_key(fast_deps)
    client = make_client(free_ip_daily=1, free_ip_minute=1)
    assert (await _ask(client)).status_code == 200  # an anonymous visitor spends the network's
    bearer = {"Authorization": f"Bearer {key}"}
    assert [(await _ask(client, bearer)).status_code for _ in range(3)] == [200] * 3


async def _send_links(client: httpx.AsyncClient, emails: list[str]) -> list[int]:
    return [
        (await client.post("/api/auth/magic-link", json={"email": e})).status_code for e in emails
    ]


async def test_magic_links_are_capped_per_network(make_client: AppFactory) -> None:
    FakeSendGrid.messages.clear()
    with running_http_server(FakeSendGrid) as host:
        mail = {"sendgrid_api_key": SecretStr(API_KEY), "sendgrid_api_base": host}
        one = make_client(**mail)
        statuses = await _send_links(one, [f"victim{n}@example.com" for n in range(25)])
        assert statuses == [200] * 3 + [429] * 22  # a burst of 3 a minute
        assert len(FakeSendGrid.messages) == 3
        FakeSendGrid.messages.clear()
        daily = make_client(peer="198.51.100.30", magic_links_per_ip_daily=2, **mail)
        assert await _send_links(daily, ["a@example.com", "b@example.com", "c@example.com"]) == [
            200,
            200,
            429,
        ]
        elsewhere = make_client(peer="198.51.100.31", **mail)
        assert await _send_links(elsewhere, ["d@example.com"]) == [200]
    assert len(FakeSendGrid.messages) == 3


async def test_magic_link_global_cap(make_client: AppFactory) -> None:
    FakeSendGrid.messages.clear()
    with running_http_server(FakeSendGrid) as host:
        mail = {
            "sendgrid_api_key": SecretStr(API_KEY),
            "sendgrid_api_base": host,
            "magic_links_daily": 3,
        }
        statuses = [
            (
                await _send_links(
                    make_client(peer=f"198.51.100.{n}", **mail), [f"user{n}@example.com"]
                )
            )[0]
            for n in range(1, 6)
        ]
    assert statuses == [200, 200, 200, 429, 429]
    assert len(FakeSendGrid.messages) == 3


# --- the client's network: FORWARDED_ALLOW_IPS and IPv6 /64 ------------------------------------

LOOPBACK = ["127.0.0.1", "::1"]


def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    assert resolve_client_ip("203.0.113.7", ["1.2.3.4"], LOOPBACK) == "203.0.113.7"


def test_forwarded_for_from_a_trusted_proxy_names_the_nearest_untrusted_hop() -> None:
    trusted = ["10.0.0.0/8"]
    # The client prepended a forged hop; the proxy appended the address it saw.
    assert resolve_client_ip("10.0.0.2", ["6.6.6.6, 198.51.100.4"], trusted) == "198.51.100.4"
    # Two proxies of ours in a row.
    assert resolve_client_ip("10.0.0.2", ["198.51.100.4, 10.0.0.9"], trusted) == "198.51.100.4"
    assert resolve_client_ip("10.0.0.2", ["198.51.100.4", "10.0.0.9"], trusted) == "198.51.100.4"
    # Garbage stops the walk at the last trusted address.
    assert resolve_client_ip("10.0.0.2", ["nonsense"], trusted) == "10.0.0.2"
    assert resolve_client_ip("10.0.0.2", [], trusted) == "10.0.0.2"


def test_ipv6_clients_are_counted_per_64() -> None:
    assert resolve_client_ip("2001:db8:1:2::a", [], LOOPBACK) == "2001:db8:1:2::/64"
    assert resolve_client_ip("2001:db8:1:2:ffff::1", [], LOOPBACK) == "2001:db8:1:2::/64"
    assert resolve_client_ip("::ffff:203.0.113.7", [], LOOPBACK) == "203.0.113.7"
    assert resolve_client_ip("::1", ["[2001:db8::5]:4000"], LOOPBACK) == "2001:db8::/64"


async def test_visitors_behind_a_configured_proxy_get_their_own_allowance(
    make_client: AppFactory,
) -> None:
    limits = {"free_ip_daily": 1, "free_ip_minute": 1}
    proxy = make_client(peer="10.0.0.2", forwarded_allow_ips=["10.0.0.0/8"], **limits)
    for visitor in ("198.51.100.4", "198.51.100.5"):
        proxy.cookies.clear()
        reply = await _ask(proxy, {"X-Forwarded-For": visitor})
        assert reply.status_code == 200, reply.text
    # The default trusts only loopback: the same proxy's visitors would share one allowance,
    # and nobody elsewhere can pick a bucket with a forged header.
    default = make_client(peer="10.0.0.2", **limits)
    default.cookies.clear()
    assert (await _ask(default, {"X-Forwarded-For": "198.51.100.6"})).status_code == 200
    default.cookies.clear()
    refused = await _ask(default, {"X-Forwarded-For": "198.51.100.7"})
    assert refused.status_code == 429 and "network" in refused.json()["error"]["message"]


async def test_ipv6_neighbours_in_one_64_share_an_allowance(make_client: AppFactory) -> None:
    limits = {"free_ip_daily": 1, "free_ip_minute": 1}
    assert (await _ask(make_client(peer="2001:db8:1:2::a", **limits))).status_code == 200
    assert (await _ask(make_client(peer="2001:db8:1:2::b", **limits))).status_code == 429
    assert (await _ask(make_client(peer="2001:db8:1:3::a", **limits))).status_code == 200


def test_forwarded_allow_ips_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8, 192.0.2.1")
    assert load_settings(_env_file=None).forwarded_allow_ips == ["10.0.0.0/8", "192.0.2.1"]
    assert Settings(_env_file=None).forwarded_allow_ips  # type: ignore[call-arg]
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    with pytest.raises(SettingsError, match="FORWARDED_ALLOW_IPS"):
        load_settings(_env_file=None)
