"""Signed links in report e-mails: confirm a subscription (double opt-in, expires) and
unsubscribe with one click (never expires: an old e-mail's link must keep working)."""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from chainlens.settings import Settings

CONFIRM_MAX_AGE_S = 7 * 24 * 3600


class LinkInvalid(ValueError):
    """The link was altered, belongs to another purpose, or has expired."""


def _secret(settings: Settings) -> str:
    return settings.secret_key.get_secret_value()


def _base(settings: Settings) -> str:
    return str(settings.public_base_url).rstrip("/")


def unsubscribe_token(settings: Settings, email: str) -> str:
    return URLSafeSerializer(_secret(settings), salt="report-unsubscribe").dumps(email.lower())


def unsubscribe_url(settings: Settings, email: str) -> str:
    return f"{_base(settings)}/reports/unsubscribe?token={unsubscribe_token(settings, email)}"


def read_unsubscribe_token(settings: Settings, token: str) -> str:
    try:
        return str(URLSafeSerializer(_secret(settings), salt="report-unsubscribe").loads(token))
    except BadSignature:
        raise LinkInvalid("this unsubscribe link is not valid") from None


def confirm_url(settings: Settings, email: str) -> str:
    token = URLSafeTimedSerializer(_secret(settings), salt="report-confirm").dumps(email.lower())
    return f"{_base(settings)}/reports/confirm?token={token}"


def read_confirm_token(settings: Settings, token: str) -> str:
    try:
        return str(
            URLSafeTimedSerializer(_secret(settings), salt="report-confirm").loads(
                token, max_age=CONFIRM_MAX_AGE_S
            )
        )
    except SignatureExpired:
        raise LinkInvalid("this confirmation link has expired; subscribe again") from None
    except BadSignature:
        raise LinkInvalid("this confirmation link is not valid") from None
