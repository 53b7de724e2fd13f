"""Discord adapter (discord.py): slash commands and buttons that call the chat service and
render embeds.

    client.py    the client, `run_discord_bot()` (what `chainlens serve` starts)
    commands.py  every slash command, autocomplete, the one error handler: `build_tree()`
    answer.py    one question: progress, the answer as embeds, follow-ups, charging
    layout.py    Discord's message limits and the answer's embed layout (pure)
    views.py     follow-up, "did you mean" and Upgrade buttons
    projects.py  the `project` option's autocomplete from the coin index
    send.py      every send through the shared limiter; `open_channel_sender()` /
                 `send_to_channel()` for reports and alerts
"""

from bots.discord.client import ChainLensDiscord, run_discord_bot
from bots.discord.commands import build_tree
from bots.discord.send import open_channel_sender, send_to_channel

__all__ = [
    "ChainLensDiscord",
    "build_tree",
    "open_channel_sender",
    "run_discord_bot",
    "send_to_channel",
]
