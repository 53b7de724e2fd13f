"""The deterministic writer: the full answer from tool results alone, never empty.

Used when no model is configured, when every model fails, or when the cost cap leaves no
room. It writes the same sections as the model is asked to, and labels itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from agent.assess import NOT_ADVICE, Assessment
from agent.facts import (
    TOOL_TITLES,
    Source,
    data_age_seconds,
    facts_of,
    human_age,
    is_outdated,
    risks_of,
)
from agent.guard import guard_for
from tools.results import Project, SentimentResult, ToolResult

DETERMINISTIC_LABEL = "_Written by ChainLens's rule-based writer (no language model was used)._"


class Report(BaseModel):
    """The answer's sections as data, for channels and the REST API."""

    summary: str
    risk_score: int | None
    stance: str
    stance_reason: str
    insights: list[str]
    risks: list[str]
    # "Market & on-chain: 3 min old" per section, from the sources' own timestamps
    data_ages: list[str] = []


def build_report(project: Project, results: Mapping[str, ToolResult],
                 verdict: Assessment) -> Report:
    """Summary, top 3 insights, stance and risks from the results, by fixed rules."""
    raw_facts = {tool: facts_of(r) for tool, r in results.items()}
    raw_risks = [risk for r in results.values() for risk in risks_of(r)]
    # Facts and risks can quote third-party text (headlines): the same guard as model output.
    guard = guard_for(results, verdict, allowed=None)
    facts = {tool: [line for f in fs if (line := guard.check_line(f))]
             for tool, fs in raw_facts.items()}
    risks = [line for r in raw_risks if (line := guard.check_line(r))]
    insights: list[str] = []
    # One insight per tool first, so a three-tool answer covers three angles.
    for depth in range(3):
        for tool in results:
            if len(insights) < 3 and depth < len(facts[tool]):
                insights.append(facts[tool][depth])
    for tool, r in results.items():
        if r.stale:
            risks.append(f"{TOOL_TITLES[tool]} data is from an older snapshot ({human_age(r.age_seconds)}).")
        if r.missing and not facts[tool]:
            risks.append(f"{TOOL_TITLES[tool]} data is unavailable: {_first(r.missing)}.")
    if not risks:
        risks.append("No specific risk flags in the data; general crypto market risk applies.")
    ages = []
    for tool, r in results.items():
        if not r.evidence:
            continue
        age = data_age_seconds(r)
        label = " (stale)" if r.stale or is_outdated(tool, age) else ""
        ages.append(f"{TOOL_TITLES[tool]}: {human_age(age)}{label}")
    return Report(summary=_summary(project, results, verdict), risk_score=verdict.risk_score,
                  stance=verdict.stance, stance_reason="; ".join(verdict.reasons),
                  insights=insights or ["The sources returned too little data for insights."],
                  risks=risks[:5], data_ages=ages)


def _first(missing: Mapping[str, str]) -> str:
    reason = next(iter(missing.values()), "no data")
    return reason.rstrip(".")


def _summary(project: Project, results: Mapping[str, ToolResult], verdict: Assessment) -> str:
    parts = [f"{TOOL_TITLES[t].lower()} score {s:.0f}/100" for t, s in verdict.scores.items()]
    sentiment = results.get("sentiment")
    if isinstance(sentiment, SentimentResult) and sentiment.trend != "insufficient data":
        parts.append(f"sentiment trend {sentiment.trend}")
    looked = ", ".join(TOOL_TITLES[t].lower() for t in results)
    if verdict.critical_flags:
        parts.append("critical contract flags: " + ", ".join(verdict.critical_flags))
    if not parts:
        return f"{project.display}: the {looked} sources returned too little data to score it."
    risk = f"; overall risk {verdict.risk_score}/10" if verdict.risk_score is not None else ""
    return f"{project.display} — " + ", ".join(parts) + risk + "."


def render_header(project: Project) -> str:
    return f"## {project.display}\n"


def render_verdict(verdict: Assessment) -> str:
    """The line the rules own: risk score and stance, or why there is no overall call."""
    if verdict.complete:
        return f"**Risk score: {verdict.risk_score}/10** · **Stance: {verdict.stance}**\n"
    if verdict.aspect_only:
        return ("**Stance: NO CALL** (findings only: an overall risk score and stance need "
                "all four analyses — market, sentiment, tokenomics and team)\n")
    missing = ", ".join(TOOL_TITLES[t].lower() for t in verdict.missing_tools)
    return (f"**Risk score: not rated** · **Stance: NO CALL** (partial data: {missing} "
            "could not be scored, so there is no overall call)\n")


def render_footer(sources: Sequence[Source]) -> str:
    """The not-advice line and the sources with the age of their data."""
    lines = ["", f"_{NOT_ADVICE}_", "", "**Sources**"]
    if not sources:
        lines.append("- none: no source returned data")
    for s in sources:
        stale = ", stale" if s.stale else ""
        lines.append(f"- {s.source} — {s.url} (data {human_age(s.age_seconds)}{stale})")
    return "\n".join(lines) + "\n"


def render_body(report: Report, verdict: Assessment) -> str:
    """The sections between header and footer, as the deterministic writer words them."""
    insights = "\n".join(f"{i}. {text}" for i, text in enumerate(report.insights, 1))
    risks = "\n".join(f"- {r}" for r in report.risks)
    reason = f" — {report.stance_reason}" if report.stance_reason else ""
    ages = f"\n**Data age:** {' · '.join(report.data_ages)}\n" if report.data_ages else ""
    return (
        f"{DETERMINISTIC_LABEL}\n\n"
        f"**Executive summary.** {report.summary}\n\n"
        f"{render_verdict(verdict)}\n"
        f"**Top insights**\n{insights}\n\n"
        f"**Stance: {report.stance}**{reason}.\n\n"
        f"**Key risks**\n{risks}\n"
        f"{ages}"
    )


def write_answer(project: Project, results: Mapping[str, ToolResult], verdict: Assessment,
                 sources: Sequence[Source]) -> tuple[str, Report]:
    """The whole deterministic answer in markdown, and its sections as data."""
    report = build_report(project, results, verdict)
    return render_header(project) + render_body(report, verdict) + render_footer(sources), report


def write_no_data_reply(project: Project, results: Mapping[str, ToolResult]) -> str:
    """No planned tool returned any data: say so plainly, why, and when to try again."""
    reasons = list(dict.fromkeys(why.rstrip(".") for r in results.values()
                                 for why in r.missing.values()))[:3]
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return (f"{render_header(project)}I couldn't get any data for {project.display} right "
            f"now{why}. This question was not charged; please try again in a few minutes.\n")


def write_no_project_reply(question: str, suggestions: Sequence[Project]) -> str:
    """The short reply when the message names no project: suggestions, a greeting or help."""
    if suggestions:
        names = ", ".join(p.display for p in suggestions[:5])
        return (f"I couldn't tell exactly which coin you mean. Did you mean: {names}? "
                "Ask again with the name or ticker, e.g. \"Research Uniswap\".\n")
    return (
        "Hi! I research crypto projects from public data. Name a coin or ticker and what you "
        "want to know, for example:\n"
        "- \"Research Uniswap\" — full report (market, sentiment, tokenomics, team)\n"
        "- \"What's SOL trading at?\" — price and market data\n"
        "- \"Is the PEPE team legit?\" — team, GitHub activity, audits\n"
        "- \"ETH tokenomics?\" — supply, unlocks, contract risks\n"
    )
