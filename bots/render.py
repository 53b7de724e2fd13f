"""Platform-neutral pieces the chat adapters share: help text, progress lines, message splitting."""

from __future__ import annotations

import html
import re
from typing import Any

TOOL_LABELS = {"onchain": "Market & on-chain", "sentiment": "Sentiment",
               "tokenomics": "Tokenomics", "team": "Team"}

HELP_TEXT = (
    "I research crypto projects with live public data (CoinGecko, DefiLlama, GoPlus, GitHub, "
    "news, Fear & Greed) and cite my sources.\n\n"
    "Ask in plain words, for example:\n"
    "• Research Uniswap\n"
    "• is the PEPE team legit?\n"
    "• ETH tokenomics?\n"
    "• what's the crowd saying about $ARB\n\n"
    "Commands:\n"
    "/usage — requests left today\n"
    "/link — get a code to share one account (and quota) across Telegram, Discord and the web\n"
    "/link CODE — attach this chat to the account that made CODE\n"
    "/upgrade — more requests with Pro\n"
    "/help — this message\n\n"
    "Not financial advice."
)


class Progress:
    """What a long answer shows while it is being built: project, tools running/done, text."""

    def __init__(self) -> None:
        self.project: str | None = None
        self.tools: dict[str, str] = {}  # tool -> "running" | "done" | "failed"
        self.text = ""
        self.final: Any = None  # the final (or error) event, once it arrived

    def apply(self, event: Any) -> bool:
        """Take one chat event; True when the plan arrived (worth showing at once)."""
        if event.type == "plan":
            self.project = event.project.display if event.project else None
            self.tools = {tool: "running" for tool in event.plan.tools}
            return True
        if event.type == "tool_started":
            self.tools[event.tool] = "running"
        elif event.type == "tool_finished":
            self.tools[event.tool] = "done" if event.ok else "failed"
        elif event.type == "text":
            self.text += event.text
        elif event.type in ("final", "error") and (self.final is None or event.type == "final"):
            self.final = event
        return False

    @property
    def answer(self) -> str:
        return getattr(self.final, "answer", None) or "Sorry, I could not build an answer this time."

    def render(self) -> str:
        lines = []
        if self.project:
            lines.append(f"🎯 {self.project}")
        marks = {"running": "⏳", "done": "✅", "failed": "⚠️"}
        if self.tools:
            lines.append("  ".join(f"{marks[s]} {TOOL_LABELS.get(t, t)}"
                                   for t, s in self.tools.items()))
        if self.text:
            lines.append("")
            lines.append(self.text)
        elif not self.tools:
            lines.append("🔎 Working on it…")
        return "\n".join(lines)


def markdown_to_telegram_html(markdown: str) -> str:
    """Our answer markdown as Telegram HTML: escape everything, then add a few safe tags."""
    out = []
    for line in html.escape(markdown, quote=False).split("\n"):
        heading = re.match(r"^#{1,4}\s+(.*)$", line)
        if heading:
            line = f"<b>{heading.group(1)}</b>"
        line = re.sub(r"^\s*[-*]\s+", "• ", line)
        line = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", line)
        line = re.sub(r"`([^`]+)`", r"<code>\1</code>", line)
        line = re.sub(r"\[([^\]]+)\]\((https?://[^\s)\"]+)\)", r'<a href="\2">\1</a>', line)
        out.append(line)
    return "\n".join(out)


def split_message(text: str, limit: int) -> list[str]:
    """Split on paragraph, then line boundaries so each part fits the platform's limit."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # a single over-long line: hard split
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current:
        parts.append(current)
    return parts or [""]
