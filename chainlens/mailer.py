"""Email through SendGrid (the official client), used for sign-in links and reports.

Errors: `EmailNotConfigured` (no SENDGRID_API_KEY), `EmailFailed` (SendGrid refused or is
unreachable). The API key is never logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

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
    client = SendGridAPIClient(
        api_key=settings.sendgrid_api_key.get_secret_value(),
        host=settings.sendgrid_api_base or "https://api.sendgrid.com",
    )
    message = Mail(
        from_email=settings.sendgrid_from_email,
        to_emails=to,
        subject=subject,
        plain_text_content=text,
        html_content=html,
    )
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


# --- batches (reports, alerts) ----------------------------------------------------------------

MAX_PERSONALIZATIONS = 1000  # SendGrid's limit per /v3/mail/send request

if TYPE_CHECKING:
    from bots.outbound import EmailMessage, EmailRecipient, SendOutcome


def _batch_blocking(
    settings: Settings, message: EmailMessage, recipients: list[EmailRecipient]
) -> SendOutcome:
    import socket
    import urllib.error

    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Header, Mail, Personalization, Substitution, To

    from bots.outbound import SendOutcome

    assert settings.sendgrid_api_key is not None
    client = SendGridAPIClient(
        api_key=settings.sendgrid_api_key.get_secret_value(),
        host=settings.sendgrid_api_base or "https://api.sendgrid.com",
    )
    client.client.timeout = settings.send_timeout_s
    mail = Mail(
        from_email=settings.sendgrid_from_email,
        subject=message.subject,
        plain_text_content=message.text,
        html_content=message.html,
    )
    for recipient in recipients:
        personalization = Personalization()
        personalization.add_to(To(recipient.address))
        for key, value in recipient.substitutions.items():
            personalization.add_substitution(Substitution(key, value))
        for key, value in recipient.headers.items():
            personalization.add_header(Header(key, value))
        mail.add_personalization(personalization)
    try:
        response = client.send(mail)
    except HTTPError as exc:
        status = int(exc.status_code)
        if status == 429:
            reset = (exc.headers or {}).get("X-RateLimit-Reset") if exc.headers else None
            wait = 5.0
            if reset and str(reset).isdigit():
                import time

                wait = max(1.0, float(reset) - time.time())
            return SendOutcome("retry", "SendGrid answered 429", retry_after_s=wait)
        if status >= 500:
            return SendOutcome("retry", f"SendGrid answered {status}", retry_after_s=10.0)
        return SendOutcome("permanent", f"SendGrid refused the batch ({status})")
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError | socket.gaierror):
            return SendOutcome(
                "retry", f"SendGrid unreachable: {type(exc.reason).__name__}", retry_after_s=5.0
            )
        return SendOutcome("unknown", f"no answer from SendGrid: {type(exc.reason).__name__}")
    except ConnectionRefusedError:
        return SendOutcome("retry", "SendGrid unreachable: connection refused", retry_after_s=5.0)
    except OSError as exc:  # timeouts and resets once the request was written: may have arrived
        return SendOutcome("unknown", f"no answer from SendGrid: {type(exc).__name__}")
    status = int(response.status_code)
    if status >= 300:
        return SendOutcome("permanent", f"SendGrid answered {status}")
    message_id = response.headers.get("X-Message-Id") if response.headers else None
    return SendOutcome("sent", message_id=message_id)


async def send_email_batch(
    settings: Settings, message: EmailMessage, recipients: list[EmailRecipient]
) -> SendOutcome:
    """One SendGrid request with one personalization per recipient; never raises for
    SendGrid's answers (see `bots.outbound` for what each outcome means)."""
    from bots.outbound import SendOutcome

    try:
        return await asyncio.wait_for(
            asyncio.to_thread(_batch_blocking, settings, message, recipients),
            timeout=settings.send_timeout_s + 5,
        )
    except TimeoutError:
        return SendOutcome("unknown", "no answer from SendGrid in time")
