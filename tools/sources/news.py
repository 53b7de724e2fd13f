"""News RSS feeds: fetch each configured feed, parse with feedparser, match items to a project."""

from __future__ import annotations

import calendar
import html
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import feedparser

from chainlens.deps import Deps
from tools.http import BadResponse, get_bytes
from tools.results import Project

log = logging.getLogger(__name__)
_TAGS = re.compile(r"<[^>]+>")
# CoinDesk sends an empty <dc:description/> after <description>; feedparser lets the empty one
# overwrite the real summary, so drop empty ones before parsing.
_EMPTY_DC_DESCRIPTION = re.compile(rb"<dc:description\s*/>|<dc:description>\s*</dc:description>")


@dataclass(frozen=True, slots=True)
class NewsItem:
    title: str
    url: str
    summary: str
    source: str
    published_at: datetime | None

    @property
    def text(self) -> str:
        return f"{self.title}. {self.summary}" if self.summary else self.title


def source_name(feed_url: str) -> str:
    """'CoinDesk RSS' style label from the feed host."""
    host = urlsplit(feed_url).netloc.removeprefix("www.")
    known = {
        "coindesk.com": "CoinDesk",
        "cointelegraph.com": "Cointelegraph",
        "decrypt.co": "Decrypt",
    }
    return f"{known.get(host, host or 'news')} RSS"


def parse_feed(body: bytes, feed_url: str) -> list[NewsItem]:
    """Items of an RSS/Atom body; BadResponse when nothing parseable is in it."""
    parsed = feedparser.parse(_EMPTY_DC_DESCRIPTION.sub(b"", body))
    if not parsed.entries and parsed.get("bozo"):
        raise BadResponse(source_name(feed_url), feed_url, "feed is not valid RSS/Atom")
    items: list[NewsItem] = []
    for entry in parsed.entries:
        title = html.unescape(_TAGS.sub("", entry.get("title") or "")).strip()
        link = entry.get("link") or ""
        if not title or not link:
            continue
        summary = html.unescape(_TAGS.sub(" ", entry.get("summary") or "")).strip()
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        published = datetime.fromtimestamp(calendar.timegm(stamp), UTC) if stamp else None
        items.append(
            NewsItem(title, link, " ".join(summary.split()), source_name(feed_url), published)
        )
    return items


def newest_published(items: list[NewsItem]) -> datetime | None:
    """The feed's own 'as of': its newest item's publication time."""
    stamps = [i.published_at for i in items if i.published_at is not None]
    return max(stamps) if stamps else None


async def fetch_feed(deps: Deps, feed_url: str) -> list[NewsItem]:
    body = await get_bytes(deps, feed_url, source=source_name(feed_url), memo_ttl=300)
    return parse_feed(body, feed_url)


def project_pattern(project: Project) -> re.Pattern[str]:
    """Word-boundary match on the name (any case) or symbol; 1-2 letter symbols only as $SYM."""
    symbol = re.escape(project.symbol.upper())
    parts = [rf"(?i:\b{re.escape(project.name)}\b)", rf"(?i:\${symbol}\b)"]
    if len(project.symbol) > 2:
        parts.append(rf"\b{symbol}\b")  # upper case only: "ONE", not "one"
    return re.compile("|".join(parts))


def matching(items: list[NewsItem], project: Project) -> list[NewsItem]:
    """Items naming the project in title or summary, newest first, one per link."""
    pattern = project_pattern(project)
    seen: set[str] = set()
    out: list[NewsItem] = []
    for item in items:
        if item.url in seen or not pattern.search(item.text):
            continue
        seen.add(item.url)
        out.append(item)
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(out, key=lambda i: i.published_at or epoch, reverse=True)
