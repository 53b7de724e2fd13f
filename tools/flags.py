"""GoPlus contract flags -> named risk flags with points and mitigations (DATA_SOURCES §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.holders import Concentration
from tools.results import FlagStatus, RiskFlag
from tools.sources._util import num


@dataclass(frozen=True, slots=True)
class FlagRule:
    name: str
    fields: tuple[str, ...]  # any "1" among them raises the flag
    points: int
    kind: str  # "contract" (halved for trusted tokens) or "owner" (dropped when renounced)


# Points from TokenSentry's and AnyScan's published methodologies.
RULES = (
    FlagRule("honeypot (cannot sell)", ("is_honeypot", "cannot_sell_all"), 40, "contract"),
    FlagRule("source code not verified", ("!is_open_source",), 25, "contract"),
    FlagRule("mintable", ("is_mintable",), 40, "owner"),
    FlagRule("owner can change balances", ("owner_change_balance",), 40, "owner"),
    FlagRule("hidden owner", ("hidden_owner",), 50, "contract"),
    FlagRule("can reclaim ownership", ("can_take_back_ownership",), 45, "contract"),
    FlagRule("transfers pausable", ("transfer_pausable",), 35, "owner"),
    FlagRule("self-destruct", ("selfdestruct",), 45, "contract"),
    FlagRule("upgradeable proxy", ("is_proxy",), 15, "contract"),
    FlagRule("blacklist function", ("is_blacklisted",), 15, "owner"),
    FlagRule("tax can be changed", ("slippage_modifiable",), 15, "owner"),
)
NOT_APPLICABLE_NAMES = [r.name for r in RULES] + [
    "buy tax",
    "sell tax",
    "team wallet share",
    "single whale",
    "top-10 concentration",
    "few holders",
]
_ZERO_OWNER = {
    "",
    "0x0000000000000000000000000000000000000000",
    "0x000000000000000000000000000000000000dead",
}


def _status(token: dict[str, Any], field: str) -> FlagStatus:
    inverted = field.startswith("!")
    raw = token.get(field.lstrip("!"))
    if raw is None or raw == "":
        return "unknown"
    value = str(raw) == "1"
    return "yes" if value != inverted else "no"


def _flag_status(token: dict[str, Any], fields: tuple[str, ...]) -> FlagStatus:
    statuses = [_status(token, f) for f in fields]
    if "yes" in statuses:
        return "yes"
    return "no" if all(s == "no" for s in statuses) else "unknown"


def _tiered(value: float | None, tiers: tuple[tuple[float, int], ...]) -> int:
    if value is None:
        return 0
    return next((points for floor, points in tiers if value > floor), 0)


def contract_flags(token: dict[str, Any], holders: Concentration) -> tuple[list[RiskFlag], int]:
    """Every named flag with its status and points; total risk points capped at 100."""
    trusted = (
        str(token.get("trust_list")) == "1"
        or str(
            (token.get("is_in_cex") or {}).get("listed")
            if isinstance(token.get("is_in_cex"), dict)
            else ""
        )
        == "1"
    )
    renounced = str(token.get("owner_address") or "").lower() in _ZERO_OWNER
    flags: list[RiskFlag] = []
    for rule in RULES:
        status = _flag_status(token, rule.fields)
        points, detail = (rule.points if status == "yes" else 0), None
        if points and rule.kind == "owner" and renounced:
            points, detail = 0, "ownership renounced"
        elif points and trusted:
            points, detail = (
                points // 2,
                "halved: on GoPlus trust list or listed on a major exchange",
            )
        flags.append(RiskFlag(name=rule.name, status=status, points=points, detail=detail))

    for name, field, tiers in (
        ("sell tax", "sell_tax", ((0.25, 30), (0.10, 15))),
        ("buy tax", "buy_tax", ((0.25, 20), (0.10, 10))),
    ):
        tax = num(token.get(field))
        flags.append(
            RiskFlag(
                name=name,
                status="unknown" if tax is None else ("yes" if tax > 0 else "no"),
                points=_tiered(tax, tiers),
                detail=None if tax is None else f"{tax:.1%}",
            )
        )

    team = (
        sum(
            v
            for v in (num(token.get("owner_percent")), num(token.get("creator_percent")))
            if v is not None
        )
        if token.get("owner_percent") is not None
        else None
    )
    flags.append(
        RiskFlag(
            name="team wallet share",
            status="unknown" if team is None else ("yes" if team > 0.10 else "no"),
            points=_tiered(team, ((0.30, 30), (0.10, 12))),
            detail=None if team is None else f"owner+creator hold {team:.1%}",
        )
    )
    largest, top10 = holders.largest_share, holders.top10_share
    flags.append(
        RiskFlag(
            name="single whale",
            status="unknown" if largest is None else ("yes" if largest > 0.20 else "no"),
            points=_tiered(largest, ((0.50, 35), (0.20, 18))),
            detail=None if largest is None else f"largest holder {largest:.1%}",
        )
    )
    flags.append(
        RiskFlag(
            name="top-10 concentration",
            status="unknown" if top10 is None else ("yes" if top10 > 0.50 else "no"),
            points=20 if top10 is not None and top10 > 0.50 else 0,
            detail=None if top10 is None else f"top 10 hold {top10:.1%} (after exclusions)",
        )
    )
    count = num(token.get("holder_count"))
    count = count or None  # GoPlus answers "0" when it did not count
    flags.append(
        RiskFlag(
            name="few holders",
            status="unknown" if count is None else ("yes" if count < 200 else "no"),
            points=0 if count is None else (20 if count < 50 else 10 if count < 200 else 0),
            detail=None if count is None else f"{int(count):,} holders",
        )
    )
    return flags, min(100, sum(f.points for f in flags))


def not_applicable_flags() -> list[RiskFlag]:
    """A native coin has no token contract: every contract check is not applicable."""
    return [
        RiskFlag(name=n, status="not applicable", detail="native coin: no token contract")
        for n in NOT_APPLICABLE_NAMES
    ]
