"""Compatibility names for the strict fake Bot API (tests/fake_bot_api.py)."""

from tests.fake_bot_api import FakeBotApi as FakeTelegram
from tests.fake_bot_api import _free_port
from tests.fake_bot_api import running_fake_bot_api as running_fake_telegram

__all__ = ["FakeTelegram", "_free_port", "running_fake_telegram"]
