"""Charging API calls that do analysis work: one request from the caller's quota, refunded
when the call produces nothing, and tier gates decided from the account (never a header)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request, Response

from billing.quota import QuotaDecision, refund_decision
from chainlens.deps import Deps
from chainlens.shield import finish_shielded
from web.auth import Caller, admit_web_request, rate_limit_headers
from web.errors import ApiError

PAID_TIERS = ("pro", "enterprise")


def require_paid(caller: Caller, message: str, upgrade_url: str) -> None:
    """403 with an upgrade link when a free account asks for a paid feature; `message` is a
    catalogue message (`N_`), worded in the caller's language by the error handler."""
    if caller.account.tier not in PAID_TIERS:
        raise ApiError(
            403,
            "upgrade_required",
            message,
            details={"tier": caller.account.tier, "upgrade_url": upgrade_url},
        )


@asynccontextmanager
async def charged(
    request: Request, response: Response, caller: Caller
) -> AsyncIterator[QuotaDecision]:
    """Consume one request (429 when spent); give it back if the body raises."""
    deps: Deps = request.app.state.deps
    caller, decision = await admit_web_request(request, caller)
    response.headers.update(rate_limit_headers(decision))
    try:
        yield decision
    except BaseException:
        # Also when the client left: the refund must outlive the cancellation.
        await finish_shielded(refund_decision(deps, decision))
        raise
