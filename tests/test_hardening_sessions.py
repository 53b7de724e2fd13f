"""Sessions nobody can forge: a generated secret, expiry, sign-out that revokes, and a
magic link that signs in only from its own page."""

from __future__ import annotations

import dataclasses
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from pydantic import SecretStr

from chainlens.deps import Deps
from chainlens.settings import Settings, SettingsError, load_settings
from tests.fake_http import running_http_server
from tests.fake_sendgrid import API_KEY, FakeSendGrid
from web.app import create_app
from web.auth import SESSION_COOKIE, session_cookie_value, sign_in_email

REPO = Path(__file__).resolve().parent.parent


# --- the secret ------------------------------------------------------------------------------


def test_without_secret_key_one_is_generated_kept_private_and_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("CHAINLENS_DATA_DIR", str(tmp_path / "data"))
    first = load_settings(_env_file=None)
    key_file = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = first.secret_key.get_secret_value()
    assert len(key) >= 32 and key != "dev-insecure-change-me"
    assert key_file.read_text().strip() == key
    assert load_settings(_env_file=None).secret_key.get_secret_value() == key  # next start
    other = tmp_path / "other"
    monkeypatch.setenv("CHAINLENS_DATA_DIR", str(other))
    assert load_settings(_env_file=None).secret_key.get_secret_value() != key  # per install
    assert key not in repr(first)


@pytest.mark.parametrize("environment", ["development", "test", "production"])
def test_placeholder_secret_is_refused_in_every_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, environment: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.setenv("SECRET_KEY", "dev-insecure-change-me")
    monkeypatch.setenv("CHAINLENS_DATA_DIR", str(tmp_path))
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert str(err.value).startswith("invalid setting SECRET_KEY:")


def test_an_unwritable_data_dir_without_secret_key_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("CHAINLENS_DATA_DIR", str(blocker / "data"))
    with pytest.raises(SettingsError, match="SECRET_KEY is not set"):
        load_settings(_env_file=None)


def test_images_run_in_production_mode() -> None:
    assert re.search(
        r"^ENV ENVIRONMENT=production$", (REPO / "Dockerfile").read_text(), re.MULTILINE
    )
    compose = (REPO / "docker-compose.yml").read_text()
    assert re.search(r"^\s+ENVIRONMENT: production$", compose, re.MULTILINE)


def test_a_cookie_signed_with_the_old_placeholder_is_not_accepted(settings: Settings) -> None:
    from web.auth import read_session

    forged = URLSafeTimedSerializer("dev-insecure-change-me", salt="chainlens.session").dumps(
        {"i": "web:victim@example.com", "v": 0}
    )
    assert read_session(settings, forged) is None
    assert read_session(settings, session_cookie_value(settings, "web:victim@example.com"))


# --- expiry and sign-out ------------------------------------------------------------------------


def backdated_cookie(settings: Settings, identity: str, days_ago: float, version: int = 0) -> str:
    """A cookie signed `days_ago` (a browser that kept it since then)."""
    import time

    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - days_ago * 86400)

    signer = URLSafeTimedSerializer(
        settings.secret_key.get_secret_value(), salt="chainlens.session", signer=Backdated
    )
    return signer.dumps({"i": identity, "v": version})


@pytest.fixture
async def client(deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(deps.settings, deps=deps)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


async def who(client: httpx.AsyncClient) -> tuple[bool, list[str]]:
    body = (await client.get("/api/account")).json()
    return body["anonymous"], body["identities"]


async def test_sessions_expire_after_30_unused_days(deps: Deps, client: httpx.AsyncClient) -> None:
    await sign_in_email(deps, "old@example.com")
    client.cookies.set(SESSION_COOKIE, backdated_cookie(deps.settings, "web:old@example.com", 31))
    assert (await who(client))[0] is True  # expired: a new anonymous visitor
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, backdated_cookie(deps.settings, "web:old@example.com", 29))
    reply = await client.get("/api/account")
    assert reply.json()["anonymous"] is False
    # Used within its 30 days: renewed, so it lasts 30 days from now (sliding).
    renewed = reply.headers["set-cookie"]
    assert renewed.startswith(f"{SESSION_COOKIE}=") and "Max-Age=2592000" in renewed


async def test_a_fresh_cookie_is_not_reissued_on_every_request(
    deps: Deps, client: httpx.AsyncClient
) -> None:
    client.cookies.set(SESSION_COOKIE, session_cookie_value(deps.settings, "web:new@example.com"))
    reply = await client.get("/api/account")
    assert reply.json()["anonymous"] is False and "set-cookie" not in reply.headers


async def test_logout_revokes_every_session_of_the_account(deps: Deps) -> None:
    await sign_in_email(deps, "lou@example.com")
    cookie = session_cookie_value(deps.settings, "web:lou@example.com")
    app = create_app(deps.settings, deps=deps)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as laptop,
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as phone,
    ):
        for device in (laptop, phone):
            device.cookies.set(SESSION_COOKIE, cookie)
            assert (await who(device))[0] is False
        out = await laptop.post("/api/auth/logout")
        assert out.status_code == 204
        assert (
            'cl_session=""' in out.headers["set-cookie"]
            and "Max-Age=0" in out.headers["set-cookie"]
        )
        # A copy of the cookie (the other device, or a thief) no longer signs anyone in.
        anonymous, identities = await who(phone)
        assert anonymous is True and "web:lou@example.com" not in identities
        assert (await phone.post("/api/keys", json={"name": "x"})).status_code == 403
        # A revoked cookie cannot sign the account out again after it signs in anew.
        version = await deps.db.fetchval(
            "SELECT session_version FROM users u JOIN identities i ON i.user_id = u.id"
            " WHERE i.identity = 'web:lou@example.com'"
        )
        fresh = session_cookie_value(deps.settings, "web:lou@example.com", version)
        phone.cookies.clear()
        phone.cookies.set(SESSION_COOKIE, cookie)
        assert (await phone.post("/api/auth/logout")).status_code == 204
        laptop.cookies.clear()
        laptop.cookies.set(SESSION_COOKIE, fresh)
        assert (await who(laptop))[0] is False


async def test_logout_without_a_session_is_harmless(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/auth/logout")).status_code == 204


# --- the magic link ----------------------------------------------------------------------------


@pytest.fixture
async def mail_client(deps: Deps) -> AsyncIterator[httpx.AsyncClient]:
    FakeSendGrid.messages.clear()
    with running_http_server(FakeSendGrid) as host:
        settings = deps.settings.model_copy(
            update={"sendgrid_api_key": SecretStr(API_KEY), "sendgrid_api_base": host}
        )
        app = create_app(settings, deps=dataclasses.replace(deps, settings=settings))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as c:
            yield c


async def emailed_link(client: httpx.AsyncClient, email: str) -> str:
    assert (await client.post("/api/auth/magic-link", json={"email": email})).status_code == 200
    text = FakeSendGrid.messages[-1]["content"][0]["value"]
    match = re.search(r"(/auth/verify\?token=[\w-]+)", text)
    assert match
    return match.group(1)


def form_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))


async def test_opening_the_link_does_not_sign_in_pressing_the_button_does(
    mail_client: httpx.AsyncClient,
) -> None:
    link = await emailed_link(mail_client, "Ann@Example.com")
    page = await mail_client.get(link)  # what a mail scanner or another site's GET does
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "ann@example.com" in page.text and 'method="post"' in page.text
    assert SESSION_COOKIE not in page.headers.get("set-cookie", "")
    assert (await who(mail_client))[0] is True
    assert (await mail_client.get(link)).status_code == 200  # still unused
    signed = await mail_client.post(
        "/auth/verify", data=form_fields(page.text), headers={"Origin": "http://testserver"}
    )  # our own page
    assert signed.status_code == 303 and signed.headers["location"] == "/account"
    anonymous, identities = await who(mail_client)
    assert anonymous is False and "web:ann@example.com" in identities
    reused = await mail_client.post("/auth/verify", data=form_fields(page.text))
    assert reused.status_code == 400 and "used or expired" in reused.text
    assert "used or expired" in (await mail_client.get(link)).text


async def test_another_site_cannot_post_its_own_link_into_a_browser(
    deps: Deps, mail_client: httpx.AsyncClient
) -> None:
    """Login CSRF: the attacker has a valid link of their own and a form on their site."""
    link = await emailed_link(mail_client, "attacker@example.com")
    token = link.split("token=")[1]
    victim = mail_client  # no sign-in cookie from our page
    forged = await victim.post("/auth/verify", data={"token": token, "csrf": "guess"})
    assert forged.status_code == 403
    assert (await who(victim))[0] is True
    cross = await victim.post(
        "/auth/verify",
        data={"token": token, "csrf": "guess"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    used = await deps.db.fetchval("SELECT used_at FROM magic_links")
    assert used is None  # the link was not spent by the refused attempts
