"""Email through SendGrid (the official client), used for sign-in links and reports.

Errors: `EmailNotConfigured` (no SENDGRID_API_KEY), `EmailFailed` (SendGrid refused or is
unreachable). The API key is never logged.
"""

from __future__ import annotations

import asyncio
import logging

from chainlens.settings import Settings

log = logging.getLogger(__name__)


class EmailNotConfigured(RuntimeError):
    """SENDGRID_API_KEY is not set."""


class EmailFailed(RuntimeError):
    """SendGrid did not accept the message."""


def _send_blocking(settings: Settings, to: str, subject: str, text: str, html: str) -> int:
    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Mail

    assert settings.sendgrid_api_key is not None
    client = SendGridAPIClient(api_key=settings.sendgrid_api_key.get_secret_value(),
                               host=settings.sendgrid_api_base or "https://api.sendgrid.com")
    message = Mail(from_email=settings.sendgrid_from_email, to_emails=to, subject=subject,
                   plain_text_content=text, html_content=html)
    try:
        response = client.send(message)
    except HTTPError as exc:
        raise EmailFailed(f"SendGrid answered {exc.status_code}") from None
    except OSError as exc:
        raise EmailFailed(f"SendGrid unreachable: {type(exc).__name__}") from None
    return int(response.status_code)


async def send_email(settings: Settings, *, to: str, subject: str, text: str, html: str) -> None:
    """Send one email; the blocking client runs in a worker thread."""
    if settings.sendgrid_api_key is None:
        raise EmailNotConfigured("email is not configured (SENDGRID_API_KEY)")
    status = await asyncio.wait_for(
        asyncio.to_thread(_send_blocking, settings, to, subject, text, html),
        timeout=settings.http_timeout_s + 5,
    )
    if status >= 300:
        raise EmailFailed(f"SendGrid answered {status}")
    log.info("email sent to %s (%s)", to.split("@")[-1], subject)
