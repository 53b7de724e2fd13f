"""Logging set-up with a filter that scrubs every configured secret from log output."""

from __future__ import annotations

import logging
import warnings

from pydantic import SecretStr

from chainlens.settings import Settings


class SecretScrubber(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        # Short values would redact ordinary words; real secrets are long.
        self._secrets = [s for s in secrets if len(s) >= 8]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        scrubbed = message
        for secret in self._secrets:
            scrubbed = scrubbed.replace(secret, "**********")
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def secret_values(settings: Settings) -> list[str]:
    return [
        value.get_secret_value()
        for value in settings.__dict__.values()
        if isinstance(value, SecretStr)
    ]


def configure_logging(settings: Settings, tag: str = "") -> None:
    """Log to stderr at LOG_LEVEL, secrets scrubbed; `tag` (`web-1`) marks one process of
    several."""
    handler = logging.StreamHandler()
    tagged = f"[{tag}] " if tag else ""
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s {tagged}%(name)s: %(message)s")
    )
    handler.addFilter(SecretScrubber(secret_values(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # httpx logs every request URL at INFO, and some URLs carry keys as query parameters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    # pgserver logs every initdb/pg_ctl line at INFO; start-up says once that it is embedded.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
