"""One settings object, read from the environment and an optional `.env`.

Every value is validated at start-up; `load_settings()` turns a validation failure into one
line per bad variable (never echoing its value, which may be a secret).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

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
_PLACEHOLDER_SECRET = "dev-insecure-change-me"  # noqa: S105 - the public value refused below
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name


class TierLimits(BaseModel):
    daily: PositiveInt
    minute: PositiveInt


DEFAULT_TIER_LIMITS: dict[TierName, TierLimits] = {
    "free": TierLimits(daily=5, minute=1),
    "pro": TierLimits(daily=1000, minute=10),
    # enterprise accounts may carry their own limits (billing); this is the default.
    "enterprise": TierLimits(daily=100_000, minute=100),
}


class WatchLimits(BaseModel):
    watchlist: PositiveInt
    alerts: PositiveInt


DEFAULT_WATCH_LIMITS: dict[TierName, WatchLimits] = {
    "free": WatchLimits(watchlist=5, alerts=3),
    "pro": WatchLimits(watchlist=100, alerts=50),
    "enterprise": WatchLimits(watchlist=1000, alerts=500),
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
    # A Redis Cluster: also chosen by a `redis+cluster://host:port[,host:port]` REDIS_URL.
    redis_cluster: bool = False
    redis_prefix: str = "cl:"
    chainlens_data_dir: Path = Field(default_factory=lambda: Path.home() / ".chainlens")
    db_pool_max: PositiveInt = 10
    redis_pool_max: PositiveInt = 50
    db_command_timeout_s: float = 10.0

    # web
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Web processes `serve` runs on its one listening socket (chainlens/serve.py).
    web_workers: int = Field(default=1, ge=1, le=64)
    public_base_url: AnyHttpUrl = AnyHttpUrl("http://localhost:8000")
    # Unset: generated once and kept in CHAINLENS_DATA_DIR/secret_key (mode 0600).
    secret_key: SecretStr = SecretStr("")
    admin_api_key: SecretStr | None = None
    # How long a process may keep an authenticated API key (billing/key_cache.py); a revoke or
    # tier change in the same process applies at once, in another process within this time.
    api_key_cache_s: float = Field(default=2.0, ge=0, le=60)
    cors_origins: CsvList = Field(default_factory=list)
    # Sign-in sessions: a cookie unused for this long expires (each use renews it).
    session_max_age_days: PositiveInt = 30
    # Request bodies (web/middleware.py): refused with 413 beyond these sizes, 408 when the
    # body is not complete within the time; headers must arrive within their own time.
    max_body_bytes: PositiveInt = 64 * 1024
    max_webhook_body_bytes: PositiveInt = 1024 * 1024
    body_timeout_s: float = Field(default=30.0, gt=0)
    header_timeout_s: float = Field(default=10.0, gt=0)
    # Price charts: PNG renders running at once per process, and chart requests per client IP
    # per minute.
    chart_render_concurrency: PositiveInt = 2
    chart_requests_per_min: PositiveInt = 30
    # Proxies whose X-Forwarded-For names the client (IPs or CIDRs); nobody else's is read.
    forwarded_allow_ips: CsvList = Field(default_factory=lambda: ["127.0.0.1", "::1"])

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
    # Webhook mode (several replicas): Telegram posts updates to this public HTTPS URL, which
    # must route to POST /api/telegram/webhook. Unset = long polling.
    telegram_webhook_url: AnyHttpUrl | None = None
    # The webhook's secret token; unset = derived from SECRET_KEY.
    telegram_webhook_secret: SecretStr | None = None
    # Pro as a 30-day Telegram Stars subscription, price in Stars; unset = no Stars offer.
    telegram_stars_pro_price: PositiveInt | None = Field(default=None, le=10000)
    discord_bot_token: SecretStr | None = None
    # Discord REST API base (default https://discord.com/api/v10): a proxy, or a local fake.
    discord_api_base: str | None = None
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
    # Free requests per client network (an IPv4 address or an IPv6 /64) shared by every free
    # web/API caller there: larger than one visitor's allowance, so offices and mobile
    # carriers are not locked out, small enough that new cookies or aliases gain little.
    free_ip_daily: PositiveInt = 30
    free_ip_minute: PositiveInt = 10
    # New anonymous accounts one client network may create per UTC day.
    anon_accounts_per_ip_daily: PositiveInt = 30
    # Sign-in e-mails per client network and for the whole service, per UTC day.
    magic_links_per_ip_daily: PositiveInt = 10
    magic_links_daily: PositiveInt = 1000

    # data sources (every base URL replaceable: Pro endpoint, proxy or local recording)
    coingecko_api_key: SecretStr | None = None
    coingecko_base_url: AnyHttpUrl = AnyHttpUrl("https://api.coingecko.com/api/v3")
    coingecko_rate_per_min: PositiveInt = 10
    # GitHub's REST budget: 60 calls/hour keyless, 5,000 with GITHUB_TOKEN (unset = by token)
    github_rate_per_hour: PositiveInt | None = None
    # How long a tool result stays in the hot cache (halved/doubled by volatility)
    cache_ttl_s: PositiveInt = 300
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
    # watchlists and alerts (reports/watch.py, reports/alerts.py)
    watch_limits: dict[TierName, WatchLimits] = Field(
        default_factory=lambda: dict(DEFAULT_WATCH_LIMITS)
    )
    # An alert re-arms only once its condition has cleared by this fraction of its level.
    alert_rearm_margin: float = Field(default=0.01, ge=0, lt=0.5)
    alert_cron: str = "* * * * *"
    alert_slow_cron: str = "*/30 * * * *"  # risk-flag and sentiment alerts
    # retention (billing/retention.py): raw usage/query rows are folded into daily aggregates
    # and deleted after `retention_days`; daily rows go after `retention_daily_days`
    retention_days: PositiveInt = 90
    retention_daily_days: PositiveInt = 730
    retention_batch: int = Field(default=5000, ge=1, le=100_000)
    retention_cron: str = "23 5 * * *"
    # SendGrid "Signed Event Webhook" verification key (base64 ECDSA public key)
    sendgrid_webhook_public_key: SecretStr | None = None

    @field_validator(
        "llm_models", "cors_origins", "news_feeds", "forwarded_allow_ips", mode="before"
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator(
        "report_cron", "cache_warm_cron", "alert_cron", "alert_slow_cron", "retention_cron"
    )
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
        if value and not value.startswith(
            ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        ):
            raise ValueError("must be a redis://, rediss://, unix:// or redis+cluster:// URL")
        return value or None

    @field_validator("redis_prefix")
    @classmethod
    def _redis_prefix(cls, value: str) -> str:
        # Keys carry hash tags ({quota}, {<project>}) that keep a script's keys in one slot of
        # a Redis Cluster; a brace in the prefix would become every key's tag instead.
        if "{" in value or "}" in value:
            raise ValueError("must not contain { or } (they would change Redis Cluster slots)")
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR: {item[:80]}") from None
        return value

    @field_validator("news_feeds")
    @classmethod
    def _feed_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"not an http(s) URL: {url[:80]}")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: list[str]) -> list[str]:
        # The widget's chat endpoints answer these origins with credentials: a wildcard or
        # "null" (sandboxed frames, file://) would let any page use a visitor's session.
        for origin in value:
            if origin in ("*", "null"):
                raise ValueError(
                    f"{origin!r} is not allowed; list each site's exact origin "
                    "(https://blog.example)"
                )
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or "*" in origin
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
            ):
                raise ValueError(f"not an origin (scheme://host[:port]): {origin[:80]}")
        return [origin.rstrip("/") for origin in value]

    @field_validator("secret_key")
    @classmethod
    def _no_placeholder_secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            return SecretStr("")  # filled in below from CHAINLENS_DATA_DIR
        if value.get_secret_value() == _PLACEHOLDER_SECRET:
            raise ValueError(
                "SECRET_KEY must be set to a real secret, not the public "
                "placeholder; or leave it unset to have one generated"
            )
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _https_webhook(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if value is not None and value.scheme != "https":
            raise ValueError("Telegram delivers webhooks to https:// URLs only")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret_charset(cls, value: SecretStr | None) -> SecretStr | None:
        import re

        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("use 1-256 characters from A-Z, a-z, 0-9, _ and -")
        return value

    @model_validator(mode="after")
    def _generated_secret_key(self) -> Settings:
        if not self.secret_key.get_secret_value():
            try:
                key = load_or_create_secret(self.chainlens_data_dir / SECRET_KEY_FILE)
            except OSError as exc:
                raise ValueError(
                    "SECRET_KEY is not set and no key could be kept under CHAINLENS_DATA_DIR "
                    f"({exc.strerror or exc}); set SECRET_KEY or a writable "
                    "CHAINLENS_DATA_DIR"
                ) from None
            # Frozen model: the one place a value is filled in after validation.
            object.__setattr__(self, "secret_key", SecretStr(key))
        return self

    @property
    def data_dir(self) -> Path:
        return self.chainlens_data_dir

    @property
    def stripe_configured(self) -> bool:
        return self.stripe_secret_key is not None

    def limits_for(self, tier: TierName) -> TierLimits:
        return self.tier_limits.get(tier, DEFAULT_TIER_LIMITS[tier])

    def watch_limits_for(self, tier: TierName) -> WatchLimits:
        return self.watch_limits.get(tier, DEFAULT_WATCH_LIMITS[tier])


def load_or_create_secret(path: Path) -> str:
    """The random key kept in `path` (mode 0600), created on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole to a private temporary file, then linked into place: processes
        # starting together all end up with the first complete key, never a partial one.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < 32:
        raise OSError(f"{path.name} holds a key shorter than 32 characters")
    return key


class SettingsError(SystemExit):
    """Start-up refused because a setting is invalid; the message names the variable."""


def load_settings(**overrides: Any) -> Settings:
    """Read settings, or exit with one clear line per invalid variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_input=False, include_url=False):
            var = str(err["loc"][0]).upper() if err["loc"] else "settings"
            lines.append(f"invalid setting {var}: {err['msg']}")
        raise SettingsError("\n".join(lines)) from None
