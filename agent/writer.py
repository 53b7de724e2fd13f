"""The deterministic writer: the full answer from tool results alone, never empty.

Used when no model is configured, when every model fails, or when the cost cap leaves no
room. It writes the same sections as the model is asked to, and labels itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from agent.assess import Assessment
from agent.facts import (
    Source,
    data_age_seconds,
    facts_of,
    is_outdated,
    risks_of,
    tool_title,
)
from agent.guard import guard_for
from chainlens.i18n import ENGLISH, N_, Localizer
from tools.results import Project, SentimentResult, ToolResult

# agent/assess.py's NOT_ADVICE, marked for the catalogue (a test keeps the two equal).
NOT_ADVICE_MESSAGE = N_(
    "Not financial advice: this is an automated summary of public data; do your own research."
)
DETERMINISTIC_LABEL = N_("_Written by ChainLens's rule-based writer (no language model was used)._")
# How each stance is named; Vietnamese keeps the rules' code beside its own word ("GIỮ (HOLD)").
STANCE_NAMES = {
    "BUY": N_("BUY"),
    "HOLD": N_("HOLD"),
    "SELL": N_("SELL"),
    "AVOID": N_("AVOID"),
    "NO CALL": N_("NO CALL"),
}
# The fixed reasons agent/assess.py gives for a stance.
_FIXED_REASONS = (
    N_("very volatile price"),
    N_("weak scores"),
    N_("weak scores and bearish sentiment"),
    N_("strong scores with moderate risk"),
    N_("mixed signals"),
)
_RISK_TOO_HIGH = re.compile(r"^risk score (\d+)/10 is too high$")
_CRITICAL = re.compile(r"^critical contract flags: (.+)$")
_COVERS = re.compile(r"^this answer covers (.+) only; an overall call needs all four analyses$")
_MISSING = re.compile(r"^no overall call: (.+) data (?:is|are) missing$")


def stance_name(stance: str, loc: Localizer = ENGLISH) -> str:
    """'HOLD' in English, 'GIỮ (HOLD)' in Vietnamese."""
    return loc._(STANCE_NAMES.get(stance, stance))


def stance_marker(stance: str, loc: Localizer = ENGLISH) -> str:
    """The text every answer carries for its stance: 'Stance: HOLD' / 'Quan điểm: GIỮ (HOLD)'."""
    return loc._("Stance: {stance}").format(stance=stance_name(stance, loc))


def _tools_list(names: str, loc: Localizer) -> str:
    return ", ".join(
        tool_title(n.strip(), loc).lower() if n.strip() in STANCE_TOOLS else n
        for n in names.split(",")
    )


STANCE_TOOLS = frozenset({"onchain", "sentiment", "tokenomics", "team"})


def localize_reason(reason: str, loc: Localizer = ENGLISH) -> str:
    """A reason from agent/assess.py in the localizer's language (English is returned as is)."""
    if loc.english:
        return reason
    if reason in _FIXED_REASONS:
        return loc._(reason)
    if m := _RISK_TOO_HIGH.match(reason):
        return loc._("risk score {score}/10 is too high").format(score=m.group(1))
    if m := _CRITICAL.match(reason):
        flags = ", ".join(loc._(f.strip()) for f in m.group(1).split(","))
        return loc._("critical contract flags: {flags}").format(flags=flags)
    if m := _COVERS.match(reason):
        return loc._(
            "this answer covers {tools} only; an overall call needs all four analyses"
        ).format(tools=_tools_list(m.group(1), loc))
    if m := _MISSING.match(reason):
        return loc._("no overall call: {tools} data missing").format(
            tools=_tools_list(m.group(1), loc)
        )
    return reason


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


def build_report(
    project: Project,
    results: Mapping[str, ToolResult],
    verdict: Assessment,
    loc: Localizer = ENGLISH,
) -> Report:
    """Summary, top 3 insights, stance and risks from the results, by fixed rules."""
    _ = loc._
    raw_facts = {tool: facts_of(r, loc) for tool, r in results.items()}
    raw_risks = [risk for r in results.values() for risk in risks_of(r, loc)]
    # Facts and risks can quote third-party text (headlines): the same guard as model output.
    guard = guard_for(results, verdict, allowed=None, language=loc.language)
    facts = {
        tool: [line for f in fs if (line := guard.check_line(f))] for tool, fs in raw_facts.items()
    }
    risks = [line for r in raw_risks if (line := guard.check_line(r))]
    insights: list[str] = []
    # One insight per tool first, so a three-tool answer covers three angles.
    for depth in range(3):
        for tool in results:
            if len(insights) < 3 and depth < len(facts[tool]):
                insights.append(facts[tool][depth])
    for tool, r in results.items():
        if r.stale:
            risks.append(
                _("{section} data is from an older snapshot ({age}).").format(
                    section=tool_title(tool, loc), age=loc.age(r.age_seconds)
                )
            )
        if r.missing and not facts[tool]:
            risks.append(
                _("{section} data is unavailable: {reason}.").format(
                    section=tool_title(tool, loc), reason=_first(r.missing, loc)
                )
            )
    if not risks:
        risks.append(_("No specific risk flags in the data; general crypto market risk applies."))
    ages = []
    for tool, r in results.items():
        if not r.evidence:
            continue
        age = data_age_seconds(r)
        label = _(" (stale)") if r.stale or is_outdated(tool, age) else ""
        ages.append(f"{tool_title(tool, loc)}: {loc.age(age)}{label}")
    return Report(
        summary=_summary(project, results, verdict, loc),
        risk_score=verdict.risk_score,
        stance=verdict.stance,
        stance_reason="; ".join(localize_reason(r, loc) for r in verdict.reasons),
        insights=insights or [_("The sources returned too little data for insights.")],
        risks=risks[:5],
        data_ages=ages,
    )


def _first(missing: Mapping[str, str], loc: Localizer = ENGLISH) -> str:
    reason = next(iter(missing.values()), "no data")
    return missing_reason(reason, loc)


# Why a tool's data is missing: the fixed wordings tools and the graph give (tools/*.py,
# agent/graph.py); other wordings (an upstream's own message) are shown as they are.
_MISSING_REASONS = (
    N_("no data"),
    N_("the tool failed unexpectedly"),
    N_("an upstream call was cancelled"),
    N_("DefiLlama does not list this project"),
    N_("contract address unknown because CoinGecko could not be fetched"),
    N_("native coin: no token contract to read holders from"),
    N_("no market data could be fetched"),
    N_("needs both market cap and TVL"),
    N_("repository list unknown: CoinGecko and DefiLlama could not be fetched"),
    N_("no public code repository is linked (CoinGecko, DefiLlama)"),
    N_("no team source could be fetched"),
    N_("market chart too short to estimate supply growth"),
    N_("no unlock schedule: keyless sources only show locks of top holders"),
    N_("CoinGecko did not report FDV or market cap"),
    N_("needs circulating and max/total supply"),
    N_("no maximum supply (uncapped) or not reported by CoinGecko"),
)
_TIMED_OUT = re.compile(r"^timed out after (\S+)s$")
_NOT_FETCHED = re.compile(r"^(.+?) could not be fetched: (.+)$")
_NOT_REPORTED = re.compile(r"^(.+?) did not report it$")


def missing_reason(reason: str, loc: Localizer = ENGLISH) -> str:
    """A missing-data reason without its final dot, in the localizer's language.

    The fixed wordings of tools/*.py and agent/graph.py are translated; an upstream's own
    error text inside them (an HTTP status, a feed's message) is shown as it came."""
    reason = reason.rstrip(".")
    if loc.english:
        return reason
    if m := _TIMED_OUT.match(reason):
        return loc._("timed out after {seconds}s").format(seconds=m.group(1))
    if m := _NOT_FETCHED.match(reason):
        return loc._("{source} could not be fetched: {error}").format(
            source=m.group(1), error=m.group(2)
        )
    if m := _NOT_REPORTED.match(reason):
        return loc._("{source} did not report it").format(source=m.group(1))
    return loc._(reason)


def unfetched_sources(missing: Mapping[str, str]) -> list[str]:
    """The sources the missing-data reasons say could not be fetched ('CoinGecko could not
    be fetched: not found (HTTP 404)' -> CoinGecko), in order, once each."""
    return list(
        dict.fromkeys(
            m.group(1) for why in missing.values() if (m := _NOT_FETCHED.match(why.rstrip(".")))
        )
    )


def _summary(
    project: Project,
    results: Mapping[str, ToolResult],
    verdict: Assessment,
    loc: Localizer = ENGLISH,
) -> str:
    _ = loc._
    parts = [
        _("{section} score {score}/100").format(
            section=tool_title(t, loc).lower(), score=f"{s:.0f}"
        )
        for t, s in verdict.scores.items()
    ]
    sentiment = results.get("sentiment")
    if isinstance(sentiment, SentimentResult) and sentiment.trend != "insufficient data":
        parts.append(_("sentiment trend {trend}").format(trend=_(sentiment.trend)))
    looked = ", ".join(tool_title(t, loc).lower() for t in results)
    if verdict.critical_flags:
        parts.append(
            _("critical contract flags: {flags}").format(
                flags=", ".join(_(f) for f in verdict.critical_flags)
            )
        )
    if not parts:
        return _("{project}: the {sections} sources returned too little data to score it.").format(
            project=project.display, sections=looked
        )
    risk = (
        _("; overall risk {score}/10").format(score=verdict.risk_score)
        if verdict.risk_score is not None
        else ""
    )
    return f"{project.display} — " + ", ".join(parts) + risk + "."


def render_header(project: Project) -> str:
    return f"## {project.display}\n"


def render_verdict(verdict: Assessment, loc: Localizer = ENGLISH) -> str:
    """The line the rules own: risk score and stance, or why there is no overall call."""
    _ = loc._
    no_call = stance_name("NO CALL", loc)
    if verdict.complete:
        return (
            _("**Risk score: {score}/10** · **Stance: {stance}**").format(
                score=verdict.risk_score, stance=stance_name(verdict.stance, loc)
            )
            + "\n"
        )
    if verdict.aspect_only:
        return (
            _(
                "**Stance: {no_call}** (findings only: an overall risk score and stance need "
                "all four analyses — market, sentiment, tokenomics and team)"
            ).format(no_call=no_call)
            + "\n"
        )
    missing = ", ".join(tool_title(t, loc).lower() for t in verdict.missing_tools)
    return (
        _(
            "**Risk score: not rated** · **Stance: {no_call}** (partial data: {missing} "
            "could not be scored, so there is no overall call)"
        ).format(no_call=no_call, missing=missing)
        + "\n"
    )


def render_footer(sources: Sequence[Source], loc: Localizer = ENGLISH) -> str:
    """The not-advice line and the sources with the age of their data."""
    _ = loc._
    lines = ["", f"_{_(NOT_ADVICE_MESSAGE)}_", "", _("**Sources**")]
    if not sources:
        lines.append(_("- none: no source returned data"))
    for s in sources:
        stale = _(", stale") if s.stale else ""
        lines.append(
            _("- {source} — {url} (data {age}{stale})").format(
                source=s.source, url=s.url, age=loc.age(s.age_seconds), stale=stale
            )
        )
    return "\n".join(lines) + "\n"


def render_body(report: Report, verdict: Assessment, loc: Localizer = ENGLISH) -> str:
    """The sections between header and footer, as the deterministic writer words them."""
    _ = loc._
    insights = "\n".join(f"{i}. {text}" for i, text in enumerate(report.insights, 1))
    risks = "\n".join(f"- {r}" for r in report.risks)
    reason = f" — {report.stance_reason}" if report.stance_reason else ""
    ages = (
        _("**Data age:** {ages}").format(ages=" · ".join(report.data_ages)) + "\n"
        if report.data_ages
        else ""
    )
    summary_heading = _("**Executive summary.**")
    insights_heading = _("**Top insights**")
    risks_heading = _("**Key risks**")
    return (
        f"{_(DETERMINISTIC_LABEL)}\n\n"
        f"{summary_heading} {report.summary}\n\n"
        f"{render_verdict(verdict, loc)}\n"
        f"{insights_heading}\n{insights}\n\n"
        f"**{stance_marker(report.stance, loc)}**{reason}.\n\n"
        f"{risks_heading}\n{risks}\n" + ("\n" + ages if ages else "")
    )


def write_answer(
    project: Project,
    results: Mapping[str, ToolResult],
    verdict: Assessment,
    sources: Sequence[Source],
    loc: Localizer = ENGLISH,
) -> tuple[str, Report]:
    """The whole deterministic answer in markdown, and its sections as data."""
    report = build_report(project, results, verdict, loc)
    body = render_body(report, verdict, loc)
    return render_header(project) + body + render_footer(sources, loc), report


def write_no_data_reply(
    project: Project, results: Mapping[str, ToolResult], loc: Localizer = ENGLISH
) -> str:
    """No planned tool returned any data: say so plainly, why, and when to try again."""
    reasons = list(
        dict.fromkeys(
            missing_reason(why, loc) for r in results.values() for why in r.missing.values()
        )
    )[:3]
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return (
        render_header(project)
        + loc._(
            "I couldn't get any data for {project} right now{why}. This question was not charged; "
            "please try again in a few minutes."
        ).format(project=project.display, why=why)
        + "\n"
    )


def write_no_project_reply(
    question: str, suggestions: Sequence[Project], loc: Localizer = ENGLISH
) -> str:
    """The short reply when the message names no project: suggestions, a greeting or help."""
    _ = loc._
    if suggestions:
        names = ", ".join(p.display for p in suggestions[:5])
        return (
            _(
                "I couldn't tell exactly which coin you mean. Did you mean: {names}? Ask again "
                'with the name or ticker, e.g. "Research Uniswap".'
            ).format(names=names)
            + "\n"
        )
    return _(
        "Hi! I research crypto projects from public data. Name a coin or ticker and what you "
        "want to know, for example:\n"
        '- "Research Uniswap" — full report (market, sentiment, tokenomics, team)\n'
        '- "What\'s SOL trading at?" — price and market data\n'
        '- "Is the PEPE team legit?" — team, GitHub activity, audits\n'
        '- "ETH tokenomics?" — supply, unlocks, contract risks\n'
    )
