"""Signed, short-lived checkout links for chat accounts (Telegram, Discord).

A bot cannot hand a browser its account; it hands a link that names the account, signed with
SECRET_KEY and valid for 15 minutes. Opening it creates the Stripe Checkout session for that
account (web route `GET /api/payment/checkout-link/{token}`), never for the browser's cookie.

Errors: `CheckoutLinkInvalid` (bad signature, expired, malformed).
"""

from __future__ import annotations

from typing import cast

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from chainlens.settings import Settings, TierName

CHECKOUT_LINK_MAX_AGE_S = 15 * 60
_SALT = "chainlens-checkout-link"


class CheckoutLinkInvalid(ValueError):
    """The link was tampered with, is malformed, or has expired."""


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=_SALT)


def checkout_link(settings: Settings, account_id: int, tier: TierName = "pro") -> str:
    """A link that starts Checkout for `account_id` (valid 15 minutes)."""
    token = _serializer(settings).dumps({"a": account_id, "t": tier})
    return f"{str(settings.public_base_url).rstrip('/')}/api/payment/checkout-link/{token}"


def read_checkout_token(settings: Settings, token: str) -> tuple[int, TierName]:
    """The (account id, tier) a checkout link was made for."""
    try:
        data = _serializer(settings).loads(token, max_age=CHECKOUT_LINK_MAX_AGE_S)
    except SignatureExpired as exc:
        raise CheckoutLinkInvalid(
            "this upgrade link has expired; ask the bot for a new one (/upgrade)"
        ) from exc
    except BadSignature as exc:
        raise CheckoutLinkInvalid("this upgrade link is not valid") from exc
    if not (
        isinstance(data, dict)
        and isinstance(data.get("a"), int)
        and data.get("t") in ("pro", "enterprise")
    ):
        raise CheckoutLinkInvalid("this upgrade link is not valid")
    return int(data["a"]), cast(TierName, data["t"])
