"""The deterministic answer to a question about the whole market, in the turn's language.

Every figure comes from `tools.market.MarketData` and the sources list says where and how old.
Parts a source could not give are said to be missing, never invented.
"""

from __future__ import annotations

from agent.facts import Source
from agent.rules import Window
from agent.writer import render_footer
from chainlens.i18n import ENGLISH, N_, Localizer
from tools.market import TRENDING_SHOWN, CoinLine, MarketData
from tools.results import utcnow

# alternative.me's classifications, translated for the answer
FEAR_GREED_LABELS = {
    "Extreme Fear": N_("Extreme Fear"),
    "Fear": N_("Fear"),
    "Neutral": N_("Neutral"),
    "Greed": N_("Greed"),
    "Extreme Greed": N_("Extreme Greed"),
}
MISSING_PARTS = {
    "total_market_cap": N_("total market cap and volume"),
    "quotes": N_("Bitcoin and Ether prices"),
    "fear_greed": N_("Fear & Greed index"),
    "trending": N_("trending coins"),
    "movers": N_("top movers"),
}
WINDOWS = {"24h": N_("24 h"), "7d": N_("7 days")}


def market_sources(data: MarketData) -> list[Source]:
    now = utcnow()
    return [
        Source(
            source=s.source,
            url=s.url,
            stale=data.stale,
            age_seconds=round(max(0.0, (now - s.as_of).total_seconds()), 1),
        )
        for s in data.sources
    ]


def _usd(x: float | None, loc: Localizer) -> str:
    return loc.usd(x) if x is not None else loc._("n/a")


def _coin(c: CoinLine, window: Window, loc: Localizer) -> str:
    parts = []
    if c.price_usd is not None:
        parts.append(loc.usd(c.price_usd))
    change = c.change_24h_pct if window == "24h" else c.change_7d_pct
    if change is not None:
        parts.append(
            loc._("{change} in {window}").format(
                change=loc.pct(change), window=loc._(WINDOWS[window])
            )
        )
    if c.rank is not None:
        parts.append(loc._("rank #{rank}").format(rank=c.rank))
    return c.display + (" — " + ", ".join(parts) if parts else "")


def _overview(data: MarketData, loc: Localizer) -> list[str]:
    _ = loc._
    lines = [_("## Crypto market overview"), ""]
    if data.total_market_cap_usd is not None:
        cap = _("- Total market cap: {cap}").format(cap=loc.usd(data.total_market_cap_usd))
        if data.market_cap_change_24h_pct is not None:
            cap += " " + _("({change} in 24 h)").format(
                change=loc.pct(data.market_cap_change_24h_pct)
            )
        if data.total_volume_usd is not None:
            cap += "; " + _("24 h volume: {volume}").format(volume=loc.usd(data.total_volume_usd))
        lines.append(cap)
    for name, coin, share in (
        ("Bitcoin (BTC)", data.btc, data.btc_dominance_pct),
        ("Ethereum (ETH)", data.eth, data.eth_dominance_pct),
    ):
        if coin is None and share is None:
            continue
        bits = []
        if coin is not None and coin.price_usd is not None:
            bits.append(_usd(coin.price_usd, loc))
            if coin.change_24h_pct is not None:
                bits.append(
                    _("{change} in {window}").format(
                        change=loc.pct(coin.change_24h_pct), window=_(WINDOWS["24h"])
                    )
                )
        if share is not None:
            bits.append(_("dominance {share}").format(share=loc.pct(share, signed=False)))
        lines.append(f"- {name}: " + ", ".join(bits))
    if data.fear_greed is not None:
        label = data.fear_greed_label or ""
        label = _(FEAR_GREED_LABELS[label]) if label in FEAR_GREED_LABELS else label
        when = loc.date(data.fear_greed_as_of) if data.fear_greed_as_of else ""
        lines.append(
            _("- Fear & Greed index: **{value}/100** ({label}), {date}")
            .format(value=data.fear_greed, label=label, date=when)
            .rstrip(", ")
        )
    return lines


def _trending(data: MarketData, loc: Localizer) -> list[str]:
    lines = [loc._("## Trending on CoinGecko now"), ""]
    lines += [f"{i}. {_coin(c, '24h', loc)}" for i, c in enumerate(data.coins[:TRENDING_SHOWN], 1)]
    return lines


def _movers(data: MarketData, window: Window, loc: Localizer) -> list[str]:
    _ = loc._
    up, down = data.movers(window)
    lines = [
        _("## Top movers among the top {n} coins by market cap ({window})").format(
            n=data.top_n or len(data.coins), window=_(WINDOWS[window])
        ),
        "",
    ]
    for title, coins in ((_("**Gainers**"), up), (_("**Losers**"), down)):
        if coins:
            lines += [title, *(f"{i}. {_coin(c, window, loc)}" for i, c in enumerate(coins, 1)), ""]
    return lines


def market_body(data: MarketData, window: Window = "24h", loc: Localizer = ENGLISH) -> str:
    """The figures of the answer (markdown), what is missing and whether they are old; a
    model's paragraph, when there is one, follows them, before the footer."""
    _ = loc._
    if data.kind == "overview":
        lines = _overview(data, loc)
    elif data.kind == "trending":
        lines = _trending(data, loc)
    else:
        lines = _movers(data, window, loc)
    while lines and not lines[-1]:
        lines.pop()
    missing = [_(MISSING_PARTS.get(part, part)) for part in data.missing]
    if missing:
        lines += ["", _("Not available right now: {parts}.").format(parts=", ".join(missing))]
    if data.stale:
        lines += [
            "",
            _(
                "_These are the last figures we could get; the sources are not "
                "answering right now._"
            ),
        ]
    return "\n".join(lines) + "\n"


def write_market_answer(data: MarketData, window: Window = "24h", loc: Localizer = ENGLISH) -> str:
    """The whole answer (markdown): the figures, what is missing, the sources and their age."""
    if not data.has_data:
        return (
            loc._(
                "I couldn't get market data right now. This question was not charged; "
                "please try again in a few minutes."
            )
            + "\n"
        )
    return market_body(data, window, loc) + render_footer(market_sources(data), loc)
