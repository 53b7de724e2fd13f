"""The report per channel and edition: Telegram HTML (+ chart photo), a Discord embed, an
e-mail (HTML + plain text), and markdown for the web archive (rendered by markdown-it-py).

Editions: `headline` (free accounts) carries the market overview, the three most asked
projects, the movers and a link to the full report; `full` (Pro, Enterprise) carries every
project with its insight and risk flags. Every text is built from typed content with each
platform's escaping, then measured against the platform's limits (Telegram 4,096 per message,
1,024 per caption; Discord 4,096 per description, 25 fields, 6,000 in total).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from markdown_it import MarkdownIt

from bots.outbound import DiscordMessage, EmailMessage, TelegramPart
from reports.content import MarketOverview, ProjectLine, ReportContent

Edition = Literal["headline", "full"]
HEADLINE_PROJECTS = 3
TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024
DISCORD_DESCRIPTION_LIMIT = 4096
DISCORD_FIELDS_LIMIT = 25
DISCORD_FIELD_VALUE_LIMIT = 1024
DISCORD_TOTAL_LIMIT = 6000
_UNSUBSCRIBE = "%unsubscribe_url%"  # per-recipient substitution in e-mail batches
# the subscriber's own "Your watchlist" section (empty for those without one)
WATCHLIST_HTML = "%watchlist_html%"
WATCHLIST_TEXT = "%watchlist_text%"
DISCORD_CONTENT_LIMIT = 2000


def edition_for_tier(tier: str) -> Edition:
    return "headline" if tier == "free" else "full"


def _usd(x: float | None) -> str:
    if x is None:
        return "n/a"
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(x) >= size:
            return f"${x / size:.2f}{suffix}"
    return f"${x:,.2f}" if abs(x) >= 1 else f"${x:.6g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}%"


def _age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "time unknown"
    minutes = max(0, int((now - when).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min old"
    return f"{minutes // 60} h old" if minutes < 48 * 60 else f"{minutes // 1440} d old"


def title(content: ReportContent) -> str:
    return f"ChainLens daily alpha — {content.report_date:%d %b %Y}"


def report_url(base_url: str, content: ReportContent) -> str:
    return f"{base_url.rstrip('/')}/reports/{content.report_date.isoformat()}"


def _projects(content: ReportContent, edition: Edition) -> list[ProjectLine]:
    return content.projects[:HEADLINE_PROJECTS] if edition == "headline" else content.projects


def market_lines(market: MarketOverview, built: datetime) -> list[str]:
    """Plain sentences of the market overview, each with its data age."""
    out = []
    for quote, name in ((market.btc, "Bitcoin"), (market.eth, "Ether")):
        if quote.price_usd is not None:
            out.append(f"{name} {_usd(quote.price_usd)} ({_pct(quote.change_24h_pct)} 24h; "
                       f"{_age(quote.as_of, built)})")
        else:
            out.append(f"{name}: price unavailable")
    if market.total_market_cap_usd is not None:
        out.append(f"Total market cap {_usd(market.total_market_cap_usd)} "
                   f"({_pct(market.total_market_cap_change_24h_pct)} 24h; "
                   f"{_age(market.total_as_of, built)})")
    if market.fear_greed is not None:
        out.append(f"Fear & Greed {market.fear_greed} ({market.fear_greed_label}; "
                   f"{_age(market.fear_greed_as_of, built)})")
    return out


def project_summary(p: ProjectLine) -> str:
    sentiment = (f"sentiment {p.sentiment_score:.0f}/100" if p.sentiment_score is not None
                 else "sentiment n/a")
    asked = f"{p.query_count} questions" if p.query_count else "trending"
    return f"{_usd(p.price_usd)} ({_pct(p.change_24h_pct)} 24h), {sentiment}, {asked}"


def _data_note(p: ProjectLine) -> str:
    return ("stale: live sources failed; " if p.stale else "") + \
        f"data {int(p.age_seconds // 60)} min old"


# --- markdown (web archive, stored with the report) -----------------------------------------

def _md_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\`*_{}[]<>()#+-.!|~" else ch for ch in text)


def report_markdown(content: ReportContent, edition: Edition, *, full_url: str | None = None) -> str:
    built = content.generated_at
    lines = [f"# {_md_escape(title(content))}", "", _md_escape(content.intro), "",
             "## Market", ""]
    lines += [f"- {_md_escape(s)}" for s in market_lines(content.market, built)]
    lines += ["", "## Most asked about", ""]
    for i, p in enumerate(_projects(content, edition), 1):
        lines.append(f"{i}. **[{_md_escape(p.display)}]({p.url})** — "
                     f"{_md_escape(project_summary(p))}")
        if edition == "full":
            lines.append(f"   {_md_escape(p.insight)} _({_md_escape(_data_note(p))})_")
    if content.movers:
        lines += ["", "## Biggest movers", ""]
        lines += [f"- {_md_escape(content.project(m).display)} "
                  f"{_md_escape(_pct(content.project(m).change_24h_pct))}" for m in content.movers]
    if edition == "full" and content.risk_lines:
        lines += ["", "## Risk flags (GoPlus)", ""]
        lines += [f"- {_md_escape(p.display)}: {_md_escape(flag)}" for p, flag in content.risk_lines]
    if edition == "headline" and full_url:
        lines += ["", f"[Read the full report]({full_url}) — the full edition comes with Pro."]
    lines += ["", f"_Written by {_md_escape(content.intro_by)}; figures from CoinGecko, "
              "alternative.me, GoPlus and news feeds. Not financial advice._"]
    return "\n".join(lines)


_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def markdown_to_html(markdown: str) -> str:
    """Markdown as safe HTML (raw HTML in the source is escaped, not passed through)."""
    return str(_MD.render(markdown))


# --- Telegram ---------------------------------------------------------------------------------

def _h(text: str) -> str:
    return html.escape(text, quote=False)


def telegram_parts(content: ReportContent, edition: Edition, *, full_url: str) -> list[TelegramPart]:
    """The chart as a photo with a short caption (when there is a chart), then the text."""
    built = content.generated_at
    head = f"<b>{_h(title(content))}</b>"
    body = [head, "", _h(content.intro), "", "<b>Market</b>"]
    body += [f"• {_h(s)}" for s in market_lines(content.market, built)]
    body += ["", "<b>Most asked about</b>"]
    footer = []
    if content.movers:
        footer += ["", "<b>Biggest movers</b>: " + ", ".join(
            f"{_h(content.project(m).symbol)} {_h(_pct(content.project(m).change_24h_pct))}"
            for m in content.movers)]
    if edition == "full" and content.risk_lines:
        footer += ["", "<b>Risk flags (GoPlus)</b>"]
        footer += [f"• {_h(p.symbol)}: {_h(flag)}" for p, flag in content.risk_lines[:8]]
    footer += ["", (f'<a href="{html.escape(full_url)}">Full report</a>'
                    + (" — the full edition comes with Pro (/upgrade)" if edition == "headline"
                       else "")),
               "<i>Not financial advice. /alpha to unsubscribe.</i>"]
    projects = []
    for i, p in enumerate(_projects(content, edition), 1):
        line = f'{i}. <a href="{html.escape(p.url)}">{_h(p.display)}</a> — {_h(project_summary(p))}'
        if edition == "full":
            line += f"\n    {_h(p.insight)} <i>({_h(_data_note(p))})</i>"
        projects.append(line)
    # Drop projects from the end until the message fits; say how many were left out.
    while True:
        text = "\n".join(body + projects + footer)
        if len(text) <= TELEGRAM_TEXT_LIMIT or not projects:
            break
        projects.pop()
        if not any("more on the web" in x for x in footer):
            footer.insert(0, "<i>(more on the web)</i>")
    parts: list[TelegramPart] = []
    if content.has_chart:
        parts.append(TelegramPart(kind="photo", html=head[:TELEGRAM_CAPTION_LIMIT]))
    parts.append(TelegramPart(kind="text", html=text[:TELEGRAM_TEXT_LIMIT]))
    return parts


# --- Discord ----------------------------------------------------------------------------------

def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def discord_message(content: ReportContent, edition: Edition, *, full_url: str) -> DiscordMessage:
    built = content.generated_at
    description = _cut(content.intro + "\n\n" + "\n".join(
        f"• {s}" for s in market_lines(content.market, built)), DISCORD_DESCRIPTION_LIMIT)
    fields: list[dict[str, object]] = []
    for p in _projects(content, edition):
        value = project_summary(p)
        if edition == "full":
            value += f"\n{p.insight} ({_data_note(p)})\n[CoinGecko]({p.url})"
        fields.append({"name": _cut(p.display, 256), "value": _cut(value, 1024), "inline": False})
    if content.movers:
        fields.append({"name": "Biggest movers", "value": _cut(", ".join(
            f"{content.project(m).symbol} {_pct(content.project(m).change_24h_pct)}"
            for m in content.movers), 1024), "inline": False})
    if edition == "full" and content.risk_lines:
        fields.append({"name": "Risk flags (GoPlus)", "value": _cut("\n".join(
            f"{p.symbol}: {flag}" for p, flag in content.risk_lines), 1024), "inline": False})
    if edition == "headline":
        fields.append({"name": "Full report", "value": f"[Read it on the web]({full_url}) — "
                       "the full edition comes with Pro.", "inline": False})
    fields = fields[:DISCORD_FIELDS_LIMIT]
    footer = {"text": f"Written by {content.intro_by}. Not financial advice. "
                      "/alpha unsubscribe to stop."}
    embed: dict[str, object] = {
        "title": _cut(title(content), 256), "url": full_url, "description": description,
        "color": 0x2F9E44 if (content.market.btc.change_24h_pct or 0) >= 0 else 0xE03131,
        "fields": fields,
        "footer": footer,
        "timestamp": content.generated_at.isoformat(),
    }
    if content.has_chart:
        embed["image"] = {"url": "attachment://chart.png"}

    def total() -> int:  # the embed's characters Discord counts (`fields` shrinks below)
        return (len(str(embed["title"])) + len(str(embed["description"])) + len(footer["text"])
                + sum(len(str(f["name"])) + len(str(f["value"])) for f in fields))

    while total() > DISCORD_TOTAL_LIMIT and len(fields) > 1:
        fields.pop(-2 if len(fields) > 1 else -1)
    return DiscordMessage(embeds=[embed], with_chart=content.has_chart)


# --- e-mail -----------------------------------------------------------------------------------

_EMAIL_CSS = ("body{font-family:-apple-system,Segoe UI,Roboto,sans-serif;max-width:640px;"
              "margin:auto;color:#212529;line-height:1.45}a{color:#1c7ed6}"
              "small{color:#868e96}")


def email_message(content: ReportContent, edition: Edition, *, full_url: str,
                  chart_url: str | None) -> EmailMessage:
    """Subject, HTML and text; `%unsubscribe_url%` is substituted per recipient."""
    markdown = report_markdown(content, edition, full_url=full_url)
    chart = (f'<p><img src="{html.escape(chart_url)}" alt="24 h change chart" width="640"></p>'
             if chart_url and content.has_chart else "")
    body_html = markdown_to_html(markdown)
    page = (f"<!doctype html><html><head><meta charset=\"utf-8\"><style>{_EMAIL_CSS}</style>"
            f"</head><body>{body_html}{chart}{WATCHLIST_HTML}<hr><p><small>"
            "You receive this because you "
            f"subscribed to the ChainLens daily report. <a href=\"{_UNSUBSCRIBE}\">Unsubscribe"
            f"</a> with one click.</small></p></body></html>")
    text = (_plain(content, edition) + f"{WATCHLIST_TEXT}\n\nFull report: {full_url}\n"
            f"Unsubscribe: {_UNSUBSCRIBE}\n")
    return EmailMessage(subject=title(content), html=page, text=text)


def _plain(content: ReportContent, edition: Edition) -> str:
    built = content.generated_at
    lines = [title(content), "", content.intro, "", "MARKET"]
    lines += [f"- {s}" for s in market_lines(content.market, built)]
    lines += ["", "MOST ASKED ABOUT"]
    for i, p in enumerate(_projects(content, edition), 1):
        lines.append(f"{i}. {p.display} — {project_summary(p)}")
        if edition == "full":
            lines.append(f"   {p.insight} ({_data_note(p)})")
    if content.movers:
        lines += ["", "BIGGEST MOVERS: " + ", ".join(
            f"{content.project(m).symbol} {_pct(content.project(m).change_24h_pct)}"
            for m in content.movers)]
    if edition == "full" and content.risk_lines:
        lines += ["", "RISK FLAGS (GoPlus)"] + [f"- {p.symbol}: {f}" for p, f in content.risk_lines]
    lines += ["", "Not financial advice."]
    return "\n".join(lines)


def web_page(content: ReportContent, *, chart_src: str | None, subscribe_form: str,
             edition: Edition = "full", archive: Sequence[str] = ()) -> str:
    """The archive page of one report."""
    body = markdown_to_html(report_markdown(content, edition))
    chart = (f'<p><img src="{html.escape(chart_src)}" alt="24 h change of the projects" '
             f'width="640"></p>' if chart_src else "")
    nav = "".join(archive)
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{html.escape(title(content))}</title>"
            f"<link rel=\"stylesheet\" href=\"/static/page.css\"></head><body><main>"
            f"<p><a href=\"/reports\">← all reports</a></p>{body}{chart}{subscribe_form}{nav}"
            f"<p><small>Built {html.escape(content.generated_at.strftime('%Y-%m-%d %H:%M UTC'))}"
            f" · <a href=\"/api/reports/{content.report_date.isoformat()}\">JSON</a>"
            f"</small></p></main></body></html>")



# --- "Your watchlist": one section per subscriber who has a watchlist --------------------------

@dataclass(frozen=True, slots=True)
class WatchLine:
    display: str
    price_usd: float | None
    change_24h_pct: float | None
    as_of: datetime | None


WATCHLIST_TITLE = "Your watchlist"
WATCHLIST_MAX = 25  # lines shown; the rest are counted


def watch_sentence(line: WatchLine, now: datetime) -> str:
    if line.price_usd is None:
        return f"{line.display}: price unavailable right now"
    return (f"{line.display} {_usd(line.price_usd)} ({_pct(line.change_24h_pct)} 24h; "
            f"{_age(line.as_of, now)})")


def _watch_sentences(lines: Sequence[WatchLine], now: datetime) -> list[str]:
    out = [watch_sentence(line, now) for line in lines[:WATCHLIST_MAX]]
    if len(lines) > WATCHLIST_MAX:
        out.append(f"and {len(lines) - WATCHLIST_MAX} more on your account page")
    return out


def watchlist_telegram(lines: Sequence[WatchLine], now: datetime) -> TelegramPart:
    body = "\n".join(f"• {_h(s)}" for s in _watch_sentences(lines, now))
    text = f"👀 <b>{WATCHLIST_TITLE}</b> (CoinGecko)\n{body}"
    return TelegramPart("text", text[:TELEGRAM_TEXT_LIMIT])


def watchlist_discord(lines: Sequence[WatchLine], now: datetime) -> str:
    text = f"**{WATCHLIST_TITLE}** (CoinGecko)\n" + "\n".join(
        f"• {s}" for s in _watch_sentences(lines, now))
    return _cut(text, DISCORD_CONTENT_LIMIT)


def watchlist_email(lines: Sequence[WatchLine], now: datetime) -> tuple[str, str]:
    """(HTML, text) of the section, substituted into the e-mail per recipient."""
    sentences = _watch_sentences(lines, now)
    items = "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
    html_part = f"<h2>{WATCHLIST_TITLE}</h2><ul>{items}</ul><p><small>Prices: CoinGecko.</small></p>"
    text_part = "\n\n" + WATCHLIST_TITLE.upper() + " (CoinGecko)\n" + "\n".join(
        f"- {s}" for s in sentences)
    return html_part, text_part
