"""Watchlists and alerts: the one service every channel calls (issue 13).

Telegram's and Discord's `/watch`, `/unwatch`, `/watchlist`, `/alert`, `/alerts`, the web API
and account page, and the agent's plain phrasings all go through these functions; nothing about
watchlists or alerts lives in an adapter. Projects are resolved exactly as questions are
(`tools.resolve.resolve_project`: names, tickers, `$TICKER`, contracts), and an unknown one
raises `UnknownProject` with suggestions. Tier limits come from `WATCH_LIMITS`; hitting one
raises `LimitReached`, which carries what a channel needs to show the limit and an Upgrade
button (`billing.checkout_link.checkout_link`).

Evaluation, firing and delivery are in `reports/alerts.py`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast, get_args

import asyncpg
from babel.numbers import format_decimal

from billing.accounts import get_account
from chainlens.deps import Deps
from chainlens.i18n import ENGLISH, N_, LazyText, Localizer
from chainlens.settings import TierName
from tools.resolve import resolve_project
from tools.results import Project

AlertKind = Literal["above", "below", "move", "risk", "sentiment"]
AlertChannel = Literal["telegram", "discord", "email"]
ALERT_KINDS: tuple[AlertKind, ...] = get_args(AlertKind)
ALERT_CHANNELS: tuple[AlertChannel, ...] = get_args(AlertChannel)
DEFAULT_SENTIMENT_SWING = 20.0  # points on the 0..100 sentiment score
MAX_QUERY_CHARS = 200

ALERT_USAGE = N_(
    "Try: /alert BTC above 70000, /alert ETH below 3000, /alert SOL move 10%, "
    "/alert PEPE risk or /alert UNI sentiment."
)
_USAGE = LazyText(ALERT_USAGE)


class WatchError(Exception):
    """A request the service refuses: one user-facing sentence, `.message` in English and
    `.text(loc)` in the user's language (its msgid and values travel with the error)."""

    def __init__(self, message: str, /, **params: object) -> None:
        self.lazy = LazyText(message, **params)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return self.lazy.render(ENGLISH)

    def text(self, loc: Localizer = ENGLISH) -> str:
        return self.lazy.render(loc)


class LimitReached(WatchError):
    """The account's tier allows no more watchlist items (or alerts)."""

    def __init__(self, kind: Literal["watchlist", "alerts"], limit: int, tier: str) -> None:
        if kind == "watchlist":
            message = (
                N_("Your {tier} plan allows {limit} projects on your watchlist. Upgrade for more.")
                if tier != "enterprise"
                else N_(
                    "Your {tier} plan allows {limit} projects on your watchlist. Remove "
                    "one to add another."
                )
            )
        else:
            message = (
                N_("Your {tier} plan allows {limit} active alerts. Upgrade for more.")
                if tier != "enterprise"
                else N_("Your {tier} plan allows {limit} active alerts. Remove one to add another.")
            )
        super().__init__(message, tier=tier, limit=limit)
        self.kind = kind
        self.limit = limit
        self.tier = tier


class UnknownProject(WatchError):
    """No exact project for the query; `.suggestions` are the closest ones."""

    def __init__(self, query: str, suggestions: list[Project]) -> None:
        shown = query.strip()[:60]
        if suggestions:
            names = ", ".join(p.display for p in suggestions[:5])
            super().__init__(
                N_("I couldn't find exactly “{query}”. Did you mean: {names}?"),
                query=shown,
                names=names,
            )
        else:
            super().__init__(N_("I couldn't find a project called “{query}”."), query=shown)
        self.query = query
        self.suggestions = suggestions


@dataclass(frozen=True)
class WatchItem:
    project_id: str
    display: str
    added_at: datetime


@dataclass(frozen=True)
class AlertSpec:
    kind: AlertKind
    level: float | None  # above/below: USD; move: percent; sentiment: points; risk: None


@dataclass(frozen=True)
class Alert:
    id: int
    account_id: int
    project_id: str
    display: str
    kind: str
    level: float | None
    channel: AlertChannel
    destination: str
    armed: bool
    created_at: datetime
    last_fired_at: datetime | None


# --- projects and accounts --------------------------------------------------------------------


async def resolve(deps: Deps, query: str) -> Project:
    """The one project `query` names, or `UnknownProject` with suggestions."""
    query = query.strip()
    if not query:
        raise WatchError(N_("Name a project, e.g. BTC, ethereum or $PEPE."))
    if len(query) > MAX_QUERY_CHARS:
        raise WatchError(
            N_("That project name is too long (at most {limit} characters)."), limit=MAX_QUERY_CHARS
        )
    resolution = await resolve_project(deps, query)
    if resolution.project is None:
        raise UnknownProject(query, list(resolution.suggestions))
    return resolution.project


async def _lock_account(
    conn: asyncpg.Connection, deps: Deps, account_id: int
) -> tuple[int, TierName]:
    """The live account id and tier, its row locked for the transaction (limit checks)."""
    account = await get_account(deps, account_id)
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", account.id)
    return account.id, account.tier


async def _live_id(deps: Deps, account_id: int) -> int:
    return (await get_account(deps, account_id)).id


# --- watchlist --------------------------------------------------------------------------------


async def watch(deps: Deps, account_id: int, query: str) -> tuple[Project, bool]:
    """Add the project to the account's watchlist; `(project, newly added)`."""
    project = await resolve(deps, query)
    async with deps.db.acquire() as conn, conn.transaction():
        live, tier = await _lock_account(conn, deps, account_id)
        if await conn.fetchval(
            "SELECT 1 FROM watchlist_items WHERE user_id = $1 AND project_id = $2", live, project.id
        ):
            return project, False
        limit = deps.settings.watch_limits_for(tier).watchlist
        count = await conn.fetchval("SELECT count(*) FROM watchlist_items WHERE user_id = $1", live)
        if count >= limit:
            raise LimitReached("watchlist", limit, tier)
        await conn.execute(
            "INSERT INTO watchlist_items (user_id, project_id, display) VALUES ($1, $2, $3)",
            live,
            project.id,
            project.display,
        )
    return project, True


async def unwatch(deps: Deps, account_id: int, query: str) -> tuple[Project, bool]:
    """Remove the project from the watchlist; `(project, was on it)`."""
    live = await _live_id(deps, account_id)
    # A name exactly as the watchlist shows it (or its id) needs no resolution.
    row = await deps.db.fetchrow(
        "SELECT project_id, display FROM watchlist_items WHERE user_id = $1 "
        "AND (project_id = lower($2) OR lower(display) = lower($2))",
        live,
        query.strip(),
    )
    if row is not None:
        project = Project(
            id=row["project_id"], symbol=_symbol_of(row["display"]), name=_name_of(row["display"])
        )
    else:
        project = await resolve(deps, query)
    result = await deps.db.execute(
        "DELETE FROM watchlist_items WHERE user_id = $1 AND project_id = $2", live, project.id
    )
    return project, result != "DELETE 0"


async def watchlist(deps: Deps, account_id: int) -> list[WatchItem]:
    """The account's watchlist, oldest first."""
    live = await _live_id(deps, account_id)
    rows = await deps.db.fetch(
        "SELECT project_id, display, added_at FROM watchlist_items WHERE user_id = $1 "
        "ORDER BY added_at, project_id",
        live,
    )
    return [
        WatchItem(project_id=r["project_id"], display=r["display"], added_at=r["added_at"])
        for r in rows
    ]


def _name_of(display: str) -> str:
    return display.rsplit(" (", 1)[0] if display.endswith(")") else display


def _symbol_of(display: str) -> str:
    if display.endswith(")") and " (" in display:
        return display.rsplit(" (", 1)[1][:-1]
    return display


# --- alerts -----------------------------------------------------------------------------------

_NUMBER = r"\$?\s*(\d[\d,]*(?:\.\d+)?|\.\d+)\s*([kmb])?"
_PRICE = re.compile(
    rf"^(?P<q>.+?)\s+(?:(?:goes|is|gets|trades|rises|falls|drops|moves|crosses)\s+)?"
    rf"(?P<op>above|over|below|under|>=?|<=?)\s*{_NUMBER}\s*(?:usd|\$)?$",
    re.IGNORECASE,
)
_MOVE = re.compile(
    r"^(?P<q>.+?)\s+(?:move[sd]?|change[sd]?|moves?\s+by)\s*[±+-]?\s*"
    r"(\d+(?:\.\d+)?)\s*%?$",
    re.IGNORECASE,
)
_RISK = re.compile(r"^(?P<q>.+?)\s+(?:risk|risks|risk\s+flags?|flags?)$", re.IGNORECASE)
_SENTIMENT = re.compile(r"^(?P<q>.+?)\s+sentiment(?:\s+(\d+(?:\.\d+)?))?$", re.IGNORECASE)
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9}


def _number(digits: str, scale: str | None) -> float:
    try:
        value = float(digits.replace(",", "")) * _SCALE.get((scale or "").lower(), 1.0)
    except ValueError:
        raise WatchError(
            N_("“{value}” is not a number. {usage}"), value=digits, usage=_USAGE
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise WatchError(N_("The level must be a positive number. {usage}"), usage=_USAGE)
    return value


def parse_alert(text: str) -> tuple[str, AlertSpec]:
    """`"BTC above 70000"` -> `("BTC", AlertSpec("above", 70000.0))`; WatchError otherwise."""
    text = " ".join(text.strip().split())
    if not text:
        raise WatchError(N_("Say which project and when. {usage}"), usage=_USAGE)
    if len(text) > MAX_QUERY_CHARS:
        raise WatchError(N_("That alert is too long. {usage}"), usage=_USAGE)
    if m := _PRICE.match(text):
        op = m["op"].lower()
        kind: AlertKind = "above" if op in ("above", "over", ">", ">=") else "below"
        return m["q"].strip(), AlertSpec(kind, _number(m[3], m[4]))
    if m := _MOVE.match(text):
        pct = _number(m[2], None)
        if pct > 1000:
            raise WatchError(N_("A 24 h move alert takes a percentage up to 1000%."))
        return m["q"].strip(), AlertSpec("move", pct)
    if m := _RISK.match(text):
        return m["q"].strip(), AlertSpec("risk", None)
    if m := _SENTIMENT.match(text):
        swing = _number(m[2], None) if m[2] else DEFAULT_SENTIMENT_SWING
        if swing > 100:
            raise WatchError(
                N_("A sentiment swing is measured in points of a 0-100 score (at most 100).")
            )
        return m["q"].strip(), AlertSpec("sentiment", swing)
    raise WatchError(N_("I didn't understand that alert. {usage}"), usage=_USAGE)


def normalise_destination(channel: str, destination: str) -> str:
    destination = destination.strip()
    return destination.lower() if channel == "email" else destination


def _alert(row: asyncpg.Record) -> Alert:
    return Alert(
        id=int(row["id"]),
        account_id=int(row["user_id"]),
        project_id=row["project_id"],
        display=row["display"],
        kind=row["kind"],
        level=row["level"],
        channel=cast(AlertChannel, row["channel"]),
        destination=row["destination"],
        armed=row["armed"],
        created_at=row["created_at"],
        last_fired_at=row["last_fired_at"],
    )


_ALERT_COLUMNS = (
    "id, user_id, project_id, display, kind, level, channel, destination, armed, "
    "created_at, last_fired_at"
)


async def create_alert(
    deps: Deps, account_id: int, query: str, spec: AlertSpec, *, channel: str, destination: str
) -> Alert:
    """Set an alert delivered to `channel`/`destination`; the same alert again is returned as is."""
    if channel not in ALERT_CHANNELS:
        raise WatchError(
            N_("Alerts can be delivered by {channels}."), channels=", ".join(ALERT_CHANNELS)
        )
    destination = normalise_destination(channel, destination)
    if not destination or len(destination) > 320:
        raise WatchError(N_("Alerts need a chat or an e-mail address to go to."))
    if spec.kind not in ALERT_KINDS:
        raise WatchError(ALERT_USAGE)
    if (spec.kind == "risk") != (spec.level is None):
        raise WatchError(ALERT_USAGE)
    if spec.level is not None and not (math.isfinite(spec.level) and spec.level > 0):
        raise WatchError(N_("The level must be a positive number. {usage}"), usage=_USAGE)
    project = await resolve(deps, query)
    if spec.kind == "risk" and not project.platforms:
        raise WatchError(
            N_(
                "{project} is a native coin with no token contract, so it has no "
                "contract risk flags to watch."
            ),
            project=project.display,
        )
    async with deps.db.acquire() as conn, conn.transaction():
        live, tier = await _lock_account(conn, deps, account_id)
        same = await conn.fetchrow(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE user_id = $1 AND active "
            "AND project_id = $2 AND kind = $3 AND level IS NOT DISTINCT FROM $4 "
            "AND channel = $5 AND destination = $6",
            live,
            project.id,
            spec.kind,
            spec.level,
            channel,
            destination,
        )
        if same is not None:
            return _alert(same)
        limit = deps.settings.watch_limits_for(tier).alerts
        count = await conn.fetchval(
            "SELECT count(*) FROM alerts WHERE user_id = $1 AND active", live
        )
        if count >= limit:
            raise LimitReached("alerts", limit, tier)
        row = await conn.fetchrow(
            f"INSERT INTO alerts (user_id, project_id, display, kind, level, channel, "
            f"destination) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_ALERT_COLUMNS}",
            live,
            project.id,
            project.display,
            spec.kind,
            spec.level,
            channel,
            destination,
        )
    assert row is not None
    return _alert(row)


async def alerts_of(deps: Deps, account_id: int) -> list[Alert]:
    """The account's active alerts, oldest first."""
    live = await _live_id(deps, account_id)
    rows = await deps.db.fetch(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE user_id = $1 AND active ORDER BY id", live
    )
    return [_alert(r) for r in rows]


async def delete_alert(deps: Deps, account_id: int, alert_id: int) -> bool:
    """Stop one of the account's alerts; False when it has no such active alert."""
    live = await _live_id(deps, account_id)
    result: str = await deps.db.execute(
        "UPDATE alerts SET active = false, deleted_at = now() "
        "WHERE id = $1 AND user_id = $2 AND active",
        alert_id,
        live,
    )
    return result != "UPDATE 0"


# --- wording ----------------------------------------------------------------------------------


def format_price(x: float, loc: Localizer = ENGLISH) -> str:
    """$70,000 / $3,012.50 / $0.00001234 — a price as a level or a figure (vi: 70.000 USD,
    3.012,50 USD, 0,00001234 USD)."""
    if loc.english:
        if x >= 1:
            return f"${x:,.0f}" if float(x).is_integer() else f"${x:,.2f}"
        return f"${x:.4g}"
    if x >= 1:
        return f"{loc.number(x, 0 if float(x).is_integer() else 2)} USD"
    return f"{_number_text(float(f'{x:.4g}'), loc)} USD"


def _number_text(x: float, loc: Localizer = ENGLISH) -> str:
    if loc.english:
        return f"{x:g}"
    return format_decimal(float(f"{x:g}"), format="#,##0.##########", locale=loc.locale)


def condition(kind: str, level: float | None, loc: Localizer = ENGLISH) -> str:
    """'price above $70,000', 'a 24 h move of ±10%', 'a new contract risk flag', ..."""
    if kind == "above" and level is not None:
        return loc._("price above {level}").format(level=format_price(level, loc))
    if kind == "below" and level is not None:
        return loc._("price below {level}").format(level=format_price(level, loc))
    if kind == "move" and level is not None:
        return loc._("a 24 h move of ±{level}%").format(level=_number_text(level, loc))
    if kind == "sentiment" and level is not None:
        return loc._("a sentiment swing of {level} points").format(level=_number_text(level, loc))
    return loc._("a new contract risk flag")


def destination_text(channel: str, destination: str, loc: Localizer = ENGLISH) -> str:
    return destination if channel == "email" else loc._("this chat")


def describe(alert: Alert, loc: Localizer = ENGLISH) -> str:
    """One line: '#12 Bitcoin (BTC): price above $70,000 → this chat'."""
    return (
        f"#{alert.id} {alert.display}: {condition(alert.kind, alert.level, loc)} "
        f"→ {destination_text(alert.channel, alert.destination, loc)}"
    )
