"""The report per channel and edition: Telegram HTML (+ chart photo), a Discord embed, an
e-mail (HTML + plain text), and markdown for the web archive (rendered by markdown-it-py).

Editions: `headline` (free accounts) carries the market overview, the three most asked
projects, the movers and a link to the full report; `full` (Pro, Enterprise) carries every
project with its insight and risk flags. Every text is built from typed content with each
platform's escaping, then measured against the platform's limits (Telegram 4,096 per message,
1,024 per caption; Discord 4,096 per description, 25 fields, 6,000 in total).

Languages: every renderer takes a `Localizer` (English by default). Its words come from the
gettext catalogue (chainlens/locale), its numbers, money and dates from the Localizer
(vi: 1.234,5; "2,40 nghìn tỷ USD"; 01/12/2026); the content's own sentences (intro, insights,
risk flags) are read in that language (`ReportContent.intro_in`, `ProjectLine.insight_in`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from markdown_it import MarkdownIt

from bots.outbound import DiscordMessage, EmailMessage, TelegramPart
from chainlens.i18n import ENGLISH, N_, Localizer
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


def _usd(x: float | None, loc: Localizer = ENGLISH) -> str:
    return loc._("n/a") if x is None else loc.usd(x)


def _pct(x: float | None, loc: Localizer = ENGLISH) -> str:
    return loc._("n/a") if x is None else loc.pct(x)


def _age(when: datetime | None, now: datetime, loc: Localizer = ENGLISH) -> str:
    if when is None:
        return loc._("time unknown")
    return loc.age(max(0.0, (now - when).total_seconds()))


def _day(content: ReportContent, loc: Localizer) -> str:
    return f"{content.report_date:%d %b %Y}" if loc.english else loc.date(content.report_date)


def title(content: ReportContent, loc: Localizer = ENGLISH) -> str:
    return loc._("ChainLens daily alpha — {date}").format(date=_day(content, loc))


def report_url(base_url: str, content: ReportContent) -> str:
    return f"{base_url.rstrip('/')}/reports/{content.report_date.isoformat()}"


def _projects(content: ReportContent, edition: Edition) -> list[ProjectLine]:
    return content.projects[:HEADLINE_PROJECTS] if edition == "headline" else content.projects


def _fear_greed_label(label: str | None, loc: Localizer) -> str:
    return loc._(label) if label else loc._("n/a")


def market_lines(market: MarketOverview, built: datetime, loc: Localizer = ENGLISH) -> list[str]:
    """Plain sentences of the market overview, each with its data age."""
    _ = loc._
    out = []
    for quote, name in ((market.btc, "Bitcoin"), (market.eth, "Ether")):
        if quote.price_usd is not None:
            out.append(
                _("{name} {price} ({change} 24h; {age})").format(
                    name=name,
                    price=_usd(quote.price_usd, loc),
                    change=_pct(quote.change_24h_pct, loc),
                    age=_age(quote.as_of, built, loc),
                )
            )
        else:
            out.append(_("{name}: price unavailable").format(name=name))
    if market.total_market_cap_usd is not None:
        out.append(
            _("Total market cap {value} ({change} 24h; {age})").format(
                value=_usd(market.total_market_cap_usd, loc),
                change=_pct(market.total_market_cap_change_24h_pct, loc),
                age=_age(market.total_as_of, built, loc),
            )
        )
    if market.fear_greed is not None:
        out.append(
            _("Fear & Greed {value} ({label}; {age})").format(
                value=market.fear_greed,
                label=_fear_greed_label(market.fear_greed_label, loc),
                age=_age(market.fear_greed_as_of, built, loc),
            )
        )
    return out


def project_summary(p: ProjectLine, loc: Localizer = ENGLISH) -> str:
    _ = loc._
    sentiment = (
        _("sentiment {score}/100").format(score=f"{p.sentiment_score:.0f}")
        if p.sentiment_score is not None
        else _("sentiment n/a")
    )
    # (not ngettext: the catalogue and its test keep one form per message)
    asked = (
        _("trending")
        if not p.query_count
        else _("1 question")
        if p.query_count == 1
        else _("{n} questions").format(n=loc.number(p.query_count))
    )
    return _("{price} ({change} 24h), {sentiment}, {asked}").format(
        price=_usd(p.price_usd, loc),
        change=_pct(p.change_24h_pct, loc),
        sentiment=sentiment,
        asked=asked,
    )


def _data_note(p: ProjectLine, loc: Localizer = ENGLISH) -> str:
    age = loc._("data {age}").format(age=loc.age(p.age_seconds))
    return loc._("stale: live sources failed; {age}").format(age=age) if p.stale else age


def _mover_list(content: ReportContent, loc: Localizer, symbol: bool) -> list[str]:
    return [
        (content.project(m).symbol if symbol else content.project(m).display)
        + " "
        + _pct(content.project(m).change_24h_pct, loc)
        for m in content.movers
    ]


def _not_advice(content: ReportContent, loc: Localizer) -> str:
    return loc._(
        "Written by {writer}; figures from CoinGecko, alternative.me, GoPlus and news "
        "feeds. Not financial advice."
    ).format(writer=_writer(content, loc))


def _writer(content: ReportContent, loc: Localizer) -> str:
    by = content.intro_in(loc.language).by
    return loc._("the ChainLens writer") if by == "deterministic" else by


# --- markdown (web archive, stored with the report) -----------------------------------------


def _md_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\`*_{}[]<>()#+-.!|~" else ch for ch in text)


def report_markdown(
    content: ReportContent,
    edition: Edition,
    *,
    full_url: str | None = None,
    loc: Localizer = ENGLISH,
) -> str:
    _ = loc._
    built = content.generated_at
    lines = [
        f"# {_md_escape(title(content, loc))}",
        "",
        _md_escape(content.intro_in(loc.language).text),
        "",
        "## " + _("Market"),
        "",
    ]
    lines += [f"- {_md_escape(s)}" for s in market_lines(content.market, built, loc)]
    lines += ["", "## " + _("Most asked about"), ""]
    for i, p in enumerate(_projects(content, edition), 1):
        lines.append(
            f"{i}. **[{_md_escape(p.display)}]({p.url})** — {_md_escape(project_summary(p, loc))}"
        )
        if edition == "full":
            lines.append(
                f"   {_md_escape(p.insight_in(loc.language))} _({_md_escape(_data_note(p, loc))})_"
            )
    if content.movers:
        lines += ["", "## " + _("Biggest movers"), ""]
        lines += [f"- {_md_escape(m)}" for m in _mover_list(content, loc, symbol=False)]
    risks = content.risk_lines_in(loc.language)
    if edition == "full" and risks:
        lines += ["", "## " + _("Risk flags (GoPlus)"), ""]
        lines += [f"- {_md_escape(p.display)}: {_md_escape(flag)}" for p, flag in risks]
    if edition == "headline" and full_url:
        lines += [
            "",
            _("[Read the full report]({url}) — the full edition comes with Pro.").format(
                url=full_url
            ),
        ]
    lines += ["", f"_{_md_escape(_not_advice(content, loc))}_"]
    return "\n".join(lines)


_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def markdown_to_html(markdown: str) -> str:
    """Markdown as safe HTML (raw HTML in the source is escaped, not passed through)."""
    return str(_MD.render(markdown))


# --- Telegram ---------------------------------------------------------------------------------


def _h(text: str) -> str:
    return html.escape(text, quote=False)


def _b(text: str) -> str:
    return f"<b>{_h(text)}</b>"


def telegram_parts(
    content: ReportContent, edition: Edition, *, full_url: str, loc: Localizer = ENGLISH
) -> list[TelegramPart]:
    """The chart as a photo with a short caption (when there is a chart), then the text."""
    _ = loc._
    built = content.generated_at
    head = f"<b>{_h(title(content, loc))}</b>"
    body = [head, "", _h(content.intro_in(loc.language).text), "", _b(_("Market"))]
    body += [f"• {_h(s)}" for s in market_lines(content.market, built, loc)]
    body += ["", _b(_("Most asked about"))]
    footer = []
    if content.movers:
        footer += [
            "",
            _b(_("Biggest movers")) + ": " + _h(", ".join(_mover_list(content, loc, symbol=True))),
        ]
    risks = content.risk_lines_in(loc.language)
    if edition == "full" and risks:
        footer += ["", _b(_("Risk flags (GoPlus)"))]
        footer += [f"• {_h(p.symbol)}: {_h(flag)}" for p, flag in risks[:8]]
    link = f'<a href="{html.escape(full_url)}">' + _h(_("Full report")) + "</a>"
    if edition == "headline":
        link += " — " + _h(_("the full edition comes with Pro (/upgrade)"))
    footer += ["", link, "<i>" + _h(_("Not financial advice. /alpha to unsubscribe.")) + "</i>"]
    more = "<i>" + _h(_("(more on the web)")) + "</i>"
    projects = []
    for i, p in enumerate(_projects(content, edition), 1):
        line = (
            f'{i}. <a href="{html.escape(p.url)}">{_h(p.display)}</a> — '
            f"{_h(project_summary(p, loc))}"
        )
        if edition == "full":
            line += f"\n    {_h(p.insight_in(loc.language))} <i>({_h(_data_note(p, loc))})</i>"
        projects.append(line)
    # Drop projects from the end until the message fits; say how many were left out.
    while True:
        text = "\n".join(body + projects + footer)
        if telegram_length(text) <= TELEGRAM_TEXT_LIMIT or not projects:
            break
        projects.pop()
        if more not in footer:
            footer.insert(0, more)
    parts: list[TelegramPart] = []
    if content.has_chart:
        parts.append(TelegramPart(kind="photo", html=head[:TELEGRAM_CAPTION_LIMIT]))
    parts.append(TelegramPart(kind="text", html=text[:TELEGRAM_TEXT_LIMIT]))
    return parts


def telegram_length(text: str) -> int:
    """Telegram counts UTF-16 code units (an emoji outside the BMP is two); the markup counts
    too here, which only errs on the safe side."""
    return len(text.encode("utf-16-le")) // 2


# --- Discord ----------------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def discord_message(
    content: ReportContent, edition: Edition, *, full_url: str, loc: Localizer = ENGLISH
) -> DiscordMessage:
    _ = loc._
    built = content.generated_at
    description = _cut(
        content.intro_in(loc.language).text
        + "\n\n"
        + "\n".join(f"• {s}" for s in market_lines(content.market, built, loc)),
        DISCORD_DESCRIPTION_LIMIT,
    )
    fields: list[dict[str, object]] = []
    for p in _projects(content, edition):
        value = project_summary(p, loc)
        if edition == "full":
            value += f"\n{p.insight_in(loc.language)} ({_data_note(p, loc)})\n[CoinGecko]({p.url})"
        fields.append({"name": _cut(p.display, 256), "value": _cut(value, 1024), "inline": False})
    if content.movers:
        fields.append(
            {
                "name": _("Biggest movers"),
                "value": _cut(", ".join(_mover_list(content, loc, symbol=True)), 1024),
                "inline": False,
            }
        )
    risks = content.risk_lines_in(loc.language)
    if edition == "full" and risks:
        fields.append(
            {
                "name": _("Risk flags (GoPlus)"),
                "value": _cut("\n".join(f"{p.symbol}: {flag}" for p, flag in risks), 1024),
                "inline": False,
            }
        )
    if edition == "headline":
        fields.append(
            {
                "name": _("Full report"),
                "value": _("[Read it on the web]({url}) — the full edition comes with Pro.").format(
                    url=full_url
                ),
                "inline": False,
            }
        )
    fields = fields[:DISCORD_FIELDS_LIMIT]
    footer_text = _(
        "Written by {writer}. Not financial advice. /alpha unsubscribe to stop."
    ).format(writer=_writer(content, loc))
    embed: dict[str, object] = {
        "title": _cut(title(content, loc), 256),
        "url": full_url,
        "description": description,
        "color": 0x2F9E44 if (content.market.btc.change_24h_pct or 0) >= 0 else 0xE03131,
        "fields": fields,
        "footer": {"text": footer_text},
        "timestamp": content.generated_at.isoformat(),
    }
    if content.has_chart:
        embed["image"] = {"url": "attachment://chart.png"}

    def total() -> int:
        return (
            len(str(embed["title"]))
            + len(description)
            + len(footer_text)
            + sum(len(str(f["name"])) + len(str(f["value"])) for f in fields)
        )

    while total() > DISCORD_TOTAL_LIMIT and len(fields) > 1:
        fields.pop(-2 if len(fields) > 1 else -1)
    return DiscordMessage(embeds=[embed], with_chart=content.has_chart)


# --- e-mail -----------------------------------------------------------------------------------

_EMAIL_CSS = (
    "body{font-family:-apple-system,Segoe UI,Roboto,sans-serif;max-width:640px;"
    "margin:auto;color:#212529;line-height:1.45}a{color:#1c7ed6}"
    "small{color:#868e96}"
)


def email_message(
    content: ReportContent,
    edition: Edition,
    *,
    full_url: str,
    chart_url: str | None,
    loc: Localizer = ENGLISH,
) -> EmailMessage:
    """Subject, HTML and text; `%unsubscribe_url%` is substituted per recipient."""
    _ = loc._
    markdown = report_markdown(content, edition, full_url=full_url, loc=loc)
    alt = html.escape(_("24 h change chart"))
    chart = (
        f'<p><img src="{html.escape(chart_url)}" alt="{alt}" width="640"></p>'
        if chart_url and content.has_chart
        else ""
    )
    body_html = markdown_to_html(markdown)
    why = html.escape(_("You receive this because you subscribed to the ChainLens daily report."))
    stop = _('<a href="{url}">Unsubscribe</a> with one click.').format(url=_UNSUBSCRIBE)
    page = (
        f'<!doctype html><html lang="{loc.language}"><head><meta charset="utf-8">'
        f"<style>{_EMAIL_CSS}</style></head><body>{body_html}{chart}{WATCHLIST_HTML}<hr>"
        f"<p><small>{why} {stop}</small></p></body></html>"
    )
    text = (
        _plain(content, edition, loc)
        + WATCHLIST_TEXT
        + "\n\n"
        + _("Full report: {url}").format(url=full_url)
        + "\n"
        + _("Unsubscribe: {url}").format(url=_UNSUBSCRIBE)
        + "\n"
    )
    return EmailMessage(subject=title(content, loc), html=page, text=text)


def _plain(content: ReportContent, edition: Edition, loc: Localizer = ENGLISH) -> str:
    _ = loc._
    built = content.generated_at
    lines = [title(content, loc), "", content.intro_in(loc.language).text, "", _("Market").upper()]
    lines += [f"- {s}" for s in market_lines(content.market, built, loc)]
    lines += ["", _("Most asked about").upper()]
    for i, p in enumerate(_projects(content, edition), 1):
        lines.append(f"{i}. {p.display} — {project_summary(p, loc)}")
        if edition == "full":
            lines.append(f"   {p.insight_in(loc.language)} ({_data_note(p, loc)})")
    if content.movers:
        lines += [
            "",
            _("Biggest movers").upper() + ": " + ", ".join(_mover_list(content, loc, symbol=True)),
        ]
    risks = content.risk_lines_in(loc.language)
    if edition == "full" and risks:
        lines += ["", _("Risk flags (GoPlus)").upper()] + [f"- {p.symbol}: {f}" for p, f in risks]
    lines += ["", _("Not financial advice.")]
    return "\n".join(lines)


def web_page(
    content: ReportContent,
    *,
    chart_src: str | None,
    subscribe_form: str,
    edition: Edition = "full",
    archive: Sequence[str] = (),
    loc: Localizer = ENGLISH,
) -> str:
    """The archive page of one report."""
    _ = loc._
    body = markdown_to_html(report_markdown(content, edition, loc=loc))
    alt = html.escape(_("24 h change of the projects"))
    chart = (
        f'<p><img src="{html.escape(chart_src)}" alt="{alt}" width="640"></p>' if chart_src else ""
    )
    nav = "".join(archive)
    back = html.escape(_("← all reports"))
    built = _("Built {time}").format(time=content.generated_at.strftime("%Y-%m-%d %H:%M UTC"))
    return (
        f'<!doctype html><html lang="{loc.language}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title(content, loc))}</title>"
        f'<link rel="stylesheet" href="/static/page.css"></head><body><main>'
        f'<p><a href="/reports">{back}</a></p>{body}{chart}'
        f"{subscribe_form}{nav}"
        f"<p><small>{html.escape(built)}"
        f' · <a href="/api/reports/{content.report_date.isoformat()}">JSON</a>'
        f"</small></p></main></body></html>"
    )


# --- "Your watchlist": one section per subscriber who has a watchlist --------------------------


@dataclass(frozen=True, slots=True)
class WatchLine:
    display: str
    price_usd: float | None
    change_24h_pct: float | None
    as_of: datetime | None


WATCHLIST_TITLE = N_("Your watchlist")
WATCHLIST_MAX = 25  # lines shown; the rest are counted


def watch_sentence(line: WatchLine, now: datetime, loc: Localizer = ENGLISH) -> str:
    if line.price_usd is None:
        return loc._("{name}: price unavailable right now").format(name=line.display)
    return loc._("{name} {price} ({change} 24h; {age})").format(
        name=line.display,
        price=_usd(line.price_usd, loc),
        change=_pct(line.change_24h_pct, loc),
        age=_age(line.as_of, now, loc),
    )


def _watch_sentences(lines: Sequence[WatchLine], now: datetime, loc: Localizer) -> list[str]:
    out = [watch_sentence(line, now, loc) for line in lines[:WATCHLIST_MAX]]
    if len(lines) > WATCHLIST_MAX:
        out.append(
            loc._("and {n} more on your account page").format(
                n=loc.number(len(lines) - WATCHLIST_MAX)
            )
        )
    return out


def watchlist_telegram(
    lines: Sequence[WatchLine], now: datetime, loc: Localizer = ENGLISH
) -> TelegramPart:
    body = "\n".join(f"• {_h(s)}" for s in _watch_sentences(lines, now, loc))
    text = "👀 " + _b(loc._(WATCHLIST_TITLE)) + f" (CoinGecko)\n{body}"
    while telegram_length(text) > TELEGRAM_TEXT_LIMIT:  # cut whole lines, never inside a tag
        text = text.rsplit("\n", 1)[0]
    return TelegramPart("text", text)


def watchlist_discord(lines: Sequence[WatchLine], now: datetime, loc: Localizer = ENGLISH) -> str:
    text = f"**{loc._(WATCHLIST_TITLE)}** (CoinGecko)\n" + "\n".join(
        f"• {s}" for s in _watch_sentences(lines, now, loc)
    )
    return _cut(text, DISCORD_CONTENT_LIMIT)


def watchlist_email(
    lines: Sequence[WatchLine], now: datetime, loc: Localizer = ENGLISH
) -> tuple[str, str]:
    """(HTML, text) of the section, substituted into the e-mail per recipient."""
    sentences = _watch_sentences(lines, now, loc)
    heading = loc._(WATCHLIST_TITLE)
    items = "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
    note = html.escape(loc._("Prices: CoinGecko."))
    html_part = f"<h2>{html.escape(heading)}</h2><ul>{items}</ul><p><small>{note}</small></p>"
    text_part = "\n\n" + heading.upper() + " (CoinGecko)\n" + "\n".join(f"- {s}" for s in sentences)
    return html_part, text_part
