"""`POST /api/telegram/webhook`: Telegram updates in webhook mode (several replicas).

The secret token Telegram echoes in `X-Telegram-Bot-Api-Secret-Token` is checked first (wrong
or missing → 403, nothing read further). Each `update_id` is claimed once across replicas in
Redis (SET NX, 24 h), and the update is queued to the bot's application, which answers in the
background: the route returns at once, so Telegram never times out and redelivers. When Redis
cannot say whether an update is new, the route answers 503 and Telegram redelivers it later.
"""

from __future__ import annotations

import hmac
import json
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from telegram import Update

from chainlens.deps import Deps
from web.errors import ApiError

log = logging.getLogger(__name__)
router = APIRouter(tags=["telegram"], include_in_schema=False)
DEDUPE_TTL_S = 24 * 3600


async def claim_update(deps: Deps, update_id: int) -> bool:
    """True for the first replica to see `update_id` (within 24 h); RedisError if unknown."""
    return bool(
        await deps.redis.set(deps.keys("tg-update", update_id), 1, nx=True, ex=DEDUPE_TTL_S)
    )


@router.post("/api/telegram/webhook")
async def telegram_webhook(request: Request) -> JSONResponse:
    """Accept one update from Telegram, verified and deduplicated, and answer it later."""
    application = getattr(request.app.state, "telegram", None)
    if application is None:
        raise ApiError(404, "not_found", "Telegram webhook mode is not enabled.")
    from bots.telegram import webhook_secret

    deps: Deps = request.app.state.deps
    given = request.headers.get("x-telegram-bot-api-secret-token", "")
    if not hmac.compare_digest(given.encode(), webhook_secret(deps.settings).encode()):
        raise ApiError(403, "forbidden", "Wrong secret token.")
    try:
        data = json.loads(await request.body())
        update_id = int(data["update_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, "bad_request", "Not a Telegram update.") from exc
    try:
        fresh = await claim_update(deps, update_id)
    except (RedisError, OSError) as exc:
        # Without the claim we cannot promise "once": refuse, and Telegram delivers it again
        # later (it retries any non-2xx answer), so nothing is lost and nothing doubled.
        log.warning(
            "telegram update %s refused for now: dedupe unavailable (%s)",
            update_id,
            type(exc).__name__,
        )
        raise ApiError(
            503, "unavailable", "Try again shortly.", headers={"Retry-After": "1"}
        ) from exc
    if not fresh:
        return JSONResponse({"ok": True, "duplicate": True})
    await application.update_queue.put(Update.de_json(data, application.bot))
    return JSONResponse({"ok": True})
