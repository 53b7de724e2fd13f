"""The deterministic answer to a comparison: one side-by-side table of the same metrics, each
tool's sources and data age per project, and a short verdict per aspect by the tools' own
scores. It is not a buy or sell call: agent/assess.py's one stance stays per project.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from agent.assess import tool_score
from agent.facts import Source, sources_of, tool_title
from agent.writer import missing_reason, render_footer, unfetched_sources
from chainlens.i18n import ENGLISH, N_, Localizer
from tools.resolve import MAX_COMPARED, Comparison
from tools.results import (
    OnchainResult,
    Project,
    SentimentResult,
    TeamResult,
    TokenomicsResult,
    ToolName,
    ToolResult,
)

Cell = Callable[[ToolResult, Localizer], str | None]
EVEN_WITHIN = 5.0  # score points: closer than this is "about even"


def _on(kind: type[ToolResult], read: Callable[..., str | None]) -> Cell:
    def cell(result: ToolResult, loc: Localizer) -> str | None:
        return read(result, loc) if isinstance(result, kind) else None

    return cell


def _score(value: float | None, loc: Localizer) -> str | None:
    return f"{loc.number(value)}/100" if value is not None else None


ROWS: dict[ToolName, list[tuple[str, Cell]]] = {
    "onchain": [
        (
            N_("Price"),
            _on(
                OnchainResult,
                lambda r, loc: loc.usd(r.price_usd) if r.price_usd is not None else None,
            ),
        ),
        (
            N_("24 h change"),
            _on(
                OnchainResult,
                lambda r, loc: loc.pct(r.change_24h_pct) if r.change_24h_pct is not None else None,
            ),
        ),
        (
            N_("7 d change"),
            _on(
                OnchainResult,
                lambda r, loc: loc.pct(r.change_7d_pct) if r.change_7d_pct is not None else None,
            ),
        ),
        (
            N_("Market cap"),
            _on(
                OnchainResult,
                lambda r, loc: loc.usd(r.market_cap_usd) if r.market_cap_usd is not None else None,
            ),
        ),
        (
            N_("24 h volume"),
            _on(
                OnchainResult,
                lambda r, loc: loc.usd(r.volume_24h_usd) if r.volume_24h_usd is not None else None,
            ),
        ),
        (N_("Market score"), _on(OnchainResult, lambda r, loc: _score(r.market_score, loc))),
    ],
    "sentiment": [
        (N_("Sentiment score"), _on(SentimentResult, lambda r, loc: _score(r.score, loc))),
        (
            N_("News items (24 h)"),
            _on(
                SentimentResult,
                lambda r, loc: loc.number(r.volume_24h) if r.volume_24h is not None else None,
            ),
        ),
    ],
    "tokenomics": [
        (
            N_("Circulating share"),
            _on(
                TokenomicsResult,
                lambda r, loc: (
                    loc.share(r.circulating_ratio) if r.circulating_ratio is not None else None
                ),
            ),
        ),
        (
            N_("Annual inflation"),
            _on(
                TokenomicsResult,
                lambda r, loc: (
                    loc.pct(r.inflation_annual_pct, signed=False)
                    if r.inflation_annual_pct is not None
                    else None
                ),
            ),
        ),
        (
            N_("Tokenomics score"),
            _on(TokenomicsResult, lambda r, loc: _score(r.tokenomics_score, loc)),
        ),
    ],
    "team": [
        (
            N_("Commits (90 days)"),
            _on(
                TeamResult,
                lambda r, loc: loc.number(r.commits_90d) if r.commits_90d is not None else None,
            ),
        ),
        (N_("Team score"), _on(TeamResult, lambda r, loc: _score(r.team_score, loc))),
    ],
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _data_cell(result: ToolResult | None, ok: bool, loc: Localizer) -> str:
    """Where a project's figures for one tool come from and how old they are, or why not."""
    _ = loc._
    if result is None or not ok:
        reasons = [missing_reason(why, loc) for why in (result.missing.values() if result else [])]
        return _("no data ({why})").format(why=reasons[0] if reasons else _("unavailable"))
    names = list(dict.fromkeys(e.source for e in result.evidence)) or [_("unknown source")]
    text = f"{', '.join(names)} · {loc.age(result.age_seconds)}"
    if result.stale:
        text += " · " + _("stale")
    # a source that errored, or one the tool could not fetch for some of its fields
    failed = list(dict.fromkeys([*result.sources_failed, *unfetched_sources(result.missing)]))
    if failed:
        text += " · " + _("failed: {sources}").format(sources=", ".join(failed))
    elif result.missing:
        text += " · " + _("missing: {fields}").format(fields=", ".join(sorted(result.missing)[:3]))
    return text


def comparison_table(
    projects: Sequence[Project],
    tools: Sequence[ToolName],
    results: Mapping[str, Mapping[str, ToolResult]],
    ok: Mapping[str, Mapping[str, bool]],
    loc: Localizer = ENGLISH,
) -> str:
    """The markdown table: one column per project, the same rows for every one."""
    _ = loc._
    header = "| " + " | ".join([_("Metric"), *(_cell(p.display) for p in projects)]) + " |"
    lines = [header, "|" + "---|" * (len(projects) + 1)]
    for tool in tools:
        for label, read in ROWS[tool]:
            cells = []
            for p in projects:
                result = results.get(p.id, {}).get(tool)
                value = read(result, loc) if result is not None else None
                cells.append(_cell(value) if value is not None else "—")
            if any(c != "—" for c in cells):
                lines.append(f"| {_(label)} | " + " | ".join(cells) + " |")
        data_label = _("{tool} data").format(tool=tool_title(tool, loc))
        lines.append(
            f"| {_cell(data_label)} | "
            + " | ".join(
                _cell(
                    _data_cell(
                        results.get(p.id, {}).get(tool), ok.get(p.id, {}).get(tool, False), loc
                    )
                )
                for p in projects
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def aspect_verdicts(
    projects: Sequence[Project],
    tools: Sequence[ToolName],
    results: Mapping[str, Mapping[str, ToolResult]],
    loc: Localizer = ENGLISH,
) -> list[str]:
    """One line per aspect: which project the tool scores higher, about even, or why not."""
    _ = loc._
    lines = []
    for tool in tools:
        aspect = tool_title(tool, loc)
        scored = [
            (p, s)
            for p in projects
            if (r := results.get(p.id, {}).get(tool)) is not None
            and (s := tool_score(r)) is not None
        ]
        unscored = [p.display for p in projects if p not in [q for q, _s in scored]]
        if len(scored) < 2 or unscored:
            lines.append(
                _("{aspect}: not comparable — no score for {names}").format(
                    aspect=aspect, names=", ".join(unscored)
                )
            )
            continue
        scored.sort(key=lambda ps: -ps[1])
        figures = " / ".join(f"{p.symbol.upper()} {loc.number(s)}" for p, s in scored)
        if scored[0][1] - scored[1][1] < EVEN_WITHIN:
            lines.append(
                _("{aspect}: about even ({figures})").format(aspect=aspect, figures=figures)
            )
        else:
            lines.append(
                _("{aspect}: {project} is stronger ({figures})").format(
                    aspect=aspect, project=scored[0][0].display, figures=figures
                )
            )
    return lines


def comparison_sources(
    projects: Sequence[Project], results: Mapping[str, Mapping[str, ToolResult]]
) -> list[Source]:
    seen: set[str] = set()
    out: list[Source] = []
    for p in projects:
        for s in sources_of(dict(results.get(p.id, {}))):
            if s.url not in seen:
                seen.add(s.url)
                out.append(s)
    return out


def comparison_parts(
    projects: Sequence[Project],
    tools: Sequence[ToolName],
    results: Mapping[str, Mapping[str, ToolResult]],
    ok: Mapping[str, Mapping[str, bool]],
    loc: Localizer = ENGLISH,
) -> tuple[str, str, str, list[Source]]:
    """The comparison answer's parts: the title and table, the aspect-by-aspect verdicts, the
    footer (not-advice line and sources), and the sources. A model's paragraph, when there
    is one, goes between the table and the verdicts."""
    _ = loc._
    title = " vs ".join(p.display for p in projects)
    verdicts = aspect_verdicts(projects, tools, results, loc)
    sources = comparison_sources(projects, results)
    table = f"## {title}\n\n" + comparison_table(projects, tools, results, ok, loc) + "\n"
    verdict_block = (
        _("**Aspect by aspect** (the tools' scores out of 100; not a buy or sell call)")
        + "\n"
        + "\n".join(f"- {v}" for v in verdicts)
        + "\n"
    )
    return table, verdict_block, render_footer(sources, loc), sources


def write_comparison(
    projects: Sequence[Project],
    tools: Sequence[ToolName],
    results: Mapping[str, Mapping[str, ToolResult]],
    ok: Mapping[str, Mapping[str, bool]],
    loc: Localizer = ENGLISH,
) -> tuple[str, list[Source]]:
    """The whole comparison answer (markdown) and its sources."""
    table, verdicts, footer, sources = comparison_parts(projects, tools, results, ok, loc)
    return table + verdicts + footer, sources


def write_comparison_problem(comparison: Comparison, loc: Localizer = ENGLISH) -> str:
    """Too many projects, or a name that does not resolve: say which, and what to ask."""
    _ = loc._
    lines = []
    if comparison.too_many:
        named = [p.display for p in comparison.projects] + [u.query for u in comparison.unresolved]
        lines.append(
            _(
                "I can compare up to {n} projects at once, and this names {count}: "
                '{names}. Ask again with two or three of them, e.g. "Compare {a} and {b}".'
            ).format(
                n=MAX_COMPARED,
                count=len(named),
                names=", ".join(named),
                a=comparison.projects[0].symbol.upper(),
                b=(
                    comparison.projects[1].symbol.upper()
                    if len(comparison.projects) > 1
                    else named[1]
                ),
            )
        )
    for unresolved in comparison.unresolved:
        if unresolved.suggestions:
            names = ", ".join(p.display for p in unresolved.suggestions[:5])
            lines.append(
                _('I couldn\'t tell which coin "{name}" is. Did you mean: {names}?').format(
                    name=unresolved.query, names=names
                )
            )
        else:
            lines.append(
                _('I couldn\'t find a coin called "{name}".').format(name=unresolved.query)
            )
    if comparison.unresolved and not comparison.too_many:
        found = ", ".join(p.display for p in comparison.projects)
        lines.append(
            _(
                "Nothing was compared yet (found: {found}); ask again with the name or "
                "ticker of each project."
            ).format(found=found)
        )
    return "\n\n".join(lines) + "\n"
