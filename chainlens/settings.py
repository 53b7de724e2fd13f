"""One settings object, read from the environment and an optional `.env`.

Every value is validated at start-up; `load_settings()` turns a validation failure into one
line per bad variable (never echoing its value, which may be a secret).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    Field,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TierName = Literal["free", "pro", "enterprise"]
TIER_NAMES: tuple[TierName, ...] = ("free", "pro", "enterprise")

DEFAULT_NEWS_FEEDS = (
    "https://www.coindesk.com/arc/outboundfeeds/rss",
    "https://cointelegraph.com/rss",
    "https://decrypt.co/feed",
)
_PLACEHOLDER_SECRET = "dev-insecure-change-me"


class TierLimits(BaseModel):
    daily: PositiveInt
    minute: PositiveInt


DEFAULT_TIER_LIMITS: dict[TierName, TierLimits] = {
    "free": TierLimits(daily=5, minute=1),
    "pro": TierLimits(daily=1000, minute=10),
    # enterprise accounts may carry their own limits (billing); this is the default.
    "enterprise": TierLimits(daily=100_000, minute=100),
}


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    environment: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # storage: unset means "start an embedded real server under CHAINLENS_DATA_DIR"
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "cl:"
    chainlens_data_dir: Path = Field(default_factory=lambda: Path.home() / ".chainlens")
    db_pool_max: PositiveInt = 10
    redis_pool_max: PositiveInt = 50
    db_command_timeout_s: float = 10.0

    # web
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_base_url: AnyHttpUrl = AnyHttpUrl("http://localhost:8000")
    secret_key: SecretStr = SecretStr(_PLACEHOLDER_SECRET)
    admin_api_key: SecretStr | None = None
    # How long a process may keep an authenticated API key (billing/key_cache.py); a revoke or
    # tier change in the same process applies at once, in another process within this time.
    api_key_cache_s: float = Field(default=2.0, ge=0, le=60)
    cors_origins: CsvList = Field(default_factory=list)

    # LLM (LiteLLM Router). Empty model list = deterministic writer only.
    llm_models: CsvList = Field(default_factory=list)
    llm_api_base: str | None = None
    openai_api_key: SecretStr | None = None
    anthropic_api_key: SecretStr | None = None
    gemini_api_key: SecretStr | None = None
    groq_api_key: SecretStr | None = None
    llm_timeout_s: float = 30.0
    llm_max_tokens: PositiveInt = 1200
    llm_max_cost_usd: float = 0.05

    # channels
    telegram_bot_token: SecretStr | None = None
    telegram_api_base: str | None = None
    discord_bot_token: SecretStr | None = None
    # Outgoing send limits shared by every process (chainlens/limiter.py): bucket ->
    # [limit, window seconds]. Buckets: telegram, telegram_private, telegram_group, discord,
    # discord_channel, email. Unlisted buckets keep their defaults.
    send_rates: dict[str, tuple[PositiveInt, float]] = Field(default_factory=dict)

    # billing / email
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_price_pro: str | None = None
    stripe_price_enterprise: str | None = None
    stripe_api_base: str | None = None
    sendgrid_api_key: SecretStr | None = None
    sendgrid_from_email: str = "reports@chainlens.local"
    sendgrid_api_base: str | None = None
    tier_limits: dict[TierName, TierLimits] = Field(
        default_factory=lambda: dict(DEFAULT_TIER_LIMITS)
    )

    # data sources (every base URL replaceable: Pro endpoint, proxy or local recording)
    coingecko_api_key: SecretStr | None = None
    coingecko_base_url: AnyHttpUrl = AnyHttpUrl("https://api.coingecko.com/api/v3")
    coingecko_rate_per_min: PositiveInt = 10
    defillama_base_url: AnyHttpUrl = AnyHttpUrl("https://api.llama.fi")
    goplus_base_url: AnyHttpUrl = AnyHttpUrl("https://api.gopluslabs.io/api/v1")
    github_api_url: AnyHttpUrl = AnyHttpUrl("https://api.github.com")
    github_token: SecretStr | None = None
    fear_greed_url: AnyHttpUrl = AnyHttpUrl("https://api.alternative.me/fng/")
    news_feeds: CsvList = Field(default_factory=lambda: list(DEFAULT_NEWS_FEEDS))
    http_timeout_s: float = 10.0

    # daily report and job queue (reports/): cron lines are UTC, 5 fields or 6 with seconds
    report_cron: str = "0 8 * * *"
    report_top_n: int = Field(default=10, ge=1, le=25)
    cache_warm_cron: str = "*/30 * * * *"
    cache_warm_limit: PositiveInt = 20
    serve_worker: bool = True  # `serve` runs a job worker in-process; off for split deployments
    worker_concurrency: PositiveInt = 20
    worker_heartbeat_s: float = Field(default=10.0, gt=0)
    send_timeout_s: float = Field(default=15.0, gt=0)
    discord_api_base: str | None = None
    # SendGrid "Signed Event Webhook" verification key (base64 ECDSA public key)
    sendgrid_webhook_public_key: SecretStr | None = None

    @field_validator("llm_models", "cors_origins", "news_feeds", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("report_cron", "cache_warm_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError("not a valid cron line (5 fields, or 6 with seconds)")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgresql:// URL")
        return value or None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value or None

    @field_validator("news_feeds")
    @classmethod
    def _feed_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"not an http(s) URL: {url[:80]}")
        return value

    @model_validator(mode="after")
    def _no_placeholder_secret_in_production(self) -> Settings:
        if (
            self.environment == "production"
            and self.secret_key.get_secret_value() == _PLACEHOLDER_SECRET
        ):
            raise ValueError("SECRET_KEY must be set to a real secret in production")
        return self

    @property
    def data_dir(self) -> Path:
        return self.chainlens_data_dir

    @property
    def stripe_configured(self) -> bool:
        return self.stripe_secret_key is not None

    def limits_for(self, tier: TierName) -> TierLimits:
        return self.tier_limits.get(tier, DEFAULT_TIER_LIMITS[tier])


class SettingsError(SystemExit):
    """Start-up refused because a setting is invalid; the message names the variable."""


def load_settings(**overrides: object) -> Settings:
    """Read settings, or exit with one clear line per invalid variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_input=False, include_url=False):
            var = str(err["loc"][0]).upper() if err["loc"] else "settings"
            lines.append(f"invalid setting {var}: {err['msg']}")
        raise SettingsError("\n".join(lines)) from None
