from __future__ import annotations

import logging

import pytest

from chainlens.logs import SecretScrubber, secret_values
from chainlens.settings import Settings, SettingsError, load_settings


def test_malformed_database_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert (
        str(err.value) == "invalid setting DATABASE_URL: Value error, must be a postgresql:// URL"
    )


def test_unknown_tier_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIER_LIMITS", '{"gold": {"daily": 5, "minute": 1}}')
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert "invalid setting TIER_LIMITS" in str(err.value)
    assert "gold" not in str(err.value).split(":", 1)[0]


def test_error_lines_never_echo_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_very_secret_value")
    monkeypatch.setenv("PORT", "99999999")
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert "invalid setting PORT" in str(err.value)
    assert "sk_live_very_secret_value" not in str(err.value)


def test_secrets_are_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:telegram-secret-token")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "telegram-secret-token" not in repr(settings)
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == "123456:telegram-secret-token"


def test_production_refuses_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "dev-insecure-change-me")
    with pytest.raises(SettingsError, match="SECRET_KEY must be set"):
        load_settings(_env_file=None)


def test_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODELS", "openai/gpt-4o-mini, anthropic/claude-3-5-haiku")
    monkeypatch.setenv("NEWS_FEEDS", "http://127.0.0.1:1/a.xml,http://127.0.0.1:1/b.xml")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.llm_models == ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"]
    assert settings.news_feeds == ["http://127.0.0.1:1/a.xml", "http://127.0.0.1:1/b.xml"]


def test_log_scrubber_removes_secrets(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.super-secret-sendgrid")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    logger = logging.getLogger("test.scrub")
    logger.addFilter(SecretScrubber(secret_values(settings)))
    with caplog.at_level(logging.INFO, logger="test.scrub"):
        logger.info("calling with key %s", "SG.super-secret-sendgrid")
    assert "SG.super-secret-sendgrid" not in caplog.text
    assert "calling with key **********" in caplog.text
