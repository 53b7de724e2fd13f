"""The risk score (1–10) and the stance, decided by fixed rules from the tools' scores.

One verdict per evidence set: the overall stance and risk score exist only when all four tools
returned a score, and they are a function of those results alone — never of the question's
wording or of which tools it happened to run. With fewer tools (an aspect question: "ETH
tokenomics?") or with a tool's data missing, the stance is "NO CALL", the risk score is None,
and `missing_tools` / `aspect_only` say why; the tools' own findings still stand.

The model may phrase the stance but never choose it: compose passes this verdict to the
writer and the output guard puts it back if the model's text disagrees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, cast

from pydantic import BaseModel

from tools.results import (
    OnchainResult,
    SentimentResult,
    TeamResult,
    TokenomicsResult,
    ToolName,
    ToolResult,
)

Stance = Literal["BUY", "HOLD", "SELL", "AVOID", "NO CALL"]
STANCES: tuple[Stance, ...] = ("BUY", "HOLD", "SELL", "AVOID", "NO CALL")

# How much each tool's 0..100 score counts towards the overall quality.
WEIGHTS: dict[ToolName, float] = {
    "onchain": 0.3,
    "tokenomics": 0.3,
    "team": 0.25,
    "sentiment": 0.15,
}
# Contract findings that make any other signal irrelevant.
CRITICAL_FLAGS = ("honeypot", "owner can change balances", "hidden owner", "self-destruct")
NOT_ADVICE = (
    "Not financial advice: this is an automated summary of public data; do your own research."
)


class Assessment(BaseModel):
    quality: float | None  # 0..100 weighted mean of the four tool scores (complete evidence)
    risk_score: int | None  # 1 (low) .. 10 (high); None without complete evidence
    stance: Stance
    reasons: list[str]
    scores: dict[str, float]  # tool -> its 0..100 score, only those known
    # Tools the question ran whose data did not come back (a full answer built on partial data).
    missing_tools: list[str] = []
    # The question ran fewer than the four tools: findings only, never an investment stance.
    aspect_only: bool = False
    critical_flags: list[str] = []

    @property
    def complete(self) -> bool:
        return self.risk_score is not None


def tool_score(result: ToolResult) -> float | None:
    """The tool's own 0..100 score (higher is better), if it computed one."""
    if isinstance(result, OnchainResult):
        return result.market_score
    if isinstance(result, SentimentResult):
        return result.score
    if isinstance(result, TokenomicsResult):
        return result.tokenomics_score
    if isinstance(result, TeamResult):
        return result.team_score
    return None


def _critical_flags(results: Mapping[str, ToolResult]) -> list[str]:
    tokenomics = results.get("tokenomics")
    if not isinstance(tokenomics, TokenomicsResult):
        return []
    # A flag mitigated to 0 points (e.g. ownership renounced) is no longer critical.
    return [
        f.name
        for f in tokenomics.flags
        if f.status == "yes" and f.points > 0 and f.name.lower().startswith(CRITICAL_FLAGS)
    ]


def assess(results: Mapping[str, ToolResult]) -> Assessment:
    """Score what the tools found; a stance and risk score only from complete evidence."""
    scores = {name: round(s, 1) for name, r in results.items() if (s := tool_score(r)) is not None}
    critical = _critical_flags(results)
    if set(results) != set(WEIGHTS):
        ran = ", ".join(sorted(results)) or "no analysis"
        return Assessment(
            quality=None,
            risk_score=None,
            stance="NO CALL",
            scores=scores,
            aspect_only=True,
            critical_flags=critical,
            reasons=[f"this answer covers {ran} only; an overall call needs all four analyses"],
        )
    missing: list[str] = [name for name in WEIGHTS if name not in scores]
    if missing:
        return Assessment(
            quality=None,
            risk_score=None,
            stance="NO CALL",
            scores=scores,
            missing_tools=missing,
            critical_flags=critical,
            reasons=[
                "no overall call: "
                + ", ".join(missing)
                + " data "
                + ("is" if len(missing) == 1 else "are")
                + " missing"
            ],
        )
    # every name here is a tool's: the results are exactly the four tools' (checked above)
    quality = sum(WEIGHTS[cast("ToolName", n)] * s for n, s in scores.items())
    risk = 10 - quality / 100 * 9
    tokenomics = results.get("tokenomics")
    if isinstance(tokenomics, TokenomicsResult) and tokenomics.risk_score is not None:
        # The contract/supply risk score is the most direct risk signal we have.
        risk = (risk + tokenomics.risk_score) / 2
    onchain = results.get("onchain")
    reasons: list[str] = []
    if isinstance(onchain, OnchainResult) and (onchain.volatility_annual or 0) > 1.2:
        risk += 1
        reasons.append("very volatile price")
    if critical:
        risk = 10
        reasons.append("critical contract flags: " + ", ".join(critical))
    risk_score = max(1, min(10, round(risk)))
    stance = _stance(quality, risk_score, critical, results, reasons)
    return Assessment(
        quality=round(quality, 1),
        risk_score=risk_score,
        stance=stance,
        reasons=reasons,
        scores=scores,
        critical_flags=critical,
    )


def _stance(
    quality: float,
    risk: int,
    critical: list[str],
    results: Mapping[str, ToolResult],
    reasons: list[str],
) -> Stance:
    sentiment = results.get("sentiment")
    bearish = isinstance(sentiment, SentimentResult) and sentiment.trend == "bearish"
    if critical or risk >= 8:
        reasons.append(f"risk score {risk}/10 is too high")
        return "AVOID"
    if quality < 40 or (quality < 50 and bearish):
        reasons.append("weak scores" + (" and bearish sentiment" if bearish else ""))
        return "SELL"
    if quality >= 70 and risk <= 4 and not bearish:
        reasons.append("strong scores with moderate risk")
        return "BUY"
    reasons.append("mixed signals")
    return "HOLD"
