"""Signed, short-lived Upgrade links for a chat platform account (Telegram, Discord).

A chat user has no browser session, so the bot hands out a link that names its account:
`GET /api/payment/checkout-link/{token}` (web/routes/checkout_link.py) checks the signature
and age and creates the Stripe Checkout session for *that* account, never for whatever web
account the browser happens to carry.
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from chainlens.settings import Settings

CHECKOUT_LINK_SALT = "checkout-link"
CHECKOUT_LINK_MAX_AGE_S = 30 * 60


class CheckoutLinkInvalid(ValueError):
    """The token is forged, malformed or older than `CHECKOUT_LINK_MAX_AGE_S`."""


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt=CHECKOUT_LINK_SALT)


def make_checkout_link(settings: Settings, account_id: int) -> str:
    """The absolute URL that starts Checkout for `account_id` (valid 30 minutes)."""
    token = _serializer(settings).dumps({"account_id": account_id})
    return str(settings.public_base_url).rstrip("/") + f"/api/payment/checkout-link/{token}"


def read_checkout_token(settings: Settings, token: str, *,
                        max_age_s: int = CHECKOUT_LINK_MAX_AGE_S) -> int:
    """The account id a token names; `CheckoutLinkInvalid` when forged or expired."""
    try:
        data = _serializer(settings).loads(token, max_age=max_age_s)
    except SignatureExpired as exc:
        raise CheckoutLinkInvalid(
            "this upgrade link has expired; ask the bot for a new one") from exc
    except BadSignature as exc:
        raise CheckoutLinkInvalid("this upgrade link is not valid") from exc
    account_id = data.get("account_id") if isinstance(data, dict) else None
    if not isinstance(account_id, int):
        raise CheckoutLinkInvalid("this upgrade link is not valid")
    return account_id
