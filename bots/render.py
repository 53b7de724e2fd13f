"""What every chat adapter renders the same way: help text, progress lines, markdown → platform
markup, splitting long answers, and the buttons under an answer (as platform-neutral data).

Markdown goes through a real parser (markdown-it-py's token stream), so the markup we emit
always nests: a model's crossed `**`/`` ` `` can only ever become literal characters, never a
broken tag. `render_telegram()` returns each part as HTML (Telegram's tag subset) together
with the same part as plain text, which is what gets sent if a platform refuses the markup.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from chainlens.i18n import ENGLISH, N_, Localizer

# English msgids; shown through the user's localizer (`tool_label`).
TOOL_LABELS = {
    "onchain": N_("Market & on-chain"),
    "sentiment": N_("Sentiment"),
    "tokenomics": N_("Tokenomics"),
    "team": N_("Team"),
}


def tool_label(tool: str, loc: Localizer = ENGLISH) -> str:
    return loc._(TOOL_LABELS[tool]) if tool in TOOL_LABELS else tool


HELP_TEXT = N_(
    "I research crypto projects with live public data (CoinGecko, DefiLlama, GoPlus, GitHub, "
    "news, Fear & Greed) and cite my sources.\n\n"
    "Ask in plain words, for example:\n"
    "• Research Uniswap\n"
    "• is the PEPE team legit?\n"
    "• ETH tokenomics?\n"
    "• what's the crowd saying about $ARB\n\n"
    "Commands:\n"
    "/research PROJECT — the full picture\n"
    "/price, /sentiment, /tokenomics, /team PROJECT — one aspect\n"
    "/usage — requests left today\n"
    "/link — get a code to share one account (and quota) across Telegram, Discord and the web\n"
    "/link CODE — attach this chat to the account that made CODE\n"
    "/upgrade — more requests with Pro\n"
    "/alpha — subscribe this chat to the daily alpha report (again to unsubscribe)\n"
    "/watch PROJECT, /unwatch PROJECT, /watchlist — your watchlist\n"
    "/alert PROJECT above 70000 (or below 3000, move 10%, risk, sentiment) — an alert in this "
    "chat\n"
    "/alerts — your alerts with their ids; /alert delete ID removes one\n"
    "/lang — reply language: English, Tiếng Việt or automatic\n"
    "/help — this message\n\n"
    "Not financial advice."
)

TELEGRAM_LIMIT = 4096

# --- commands shared by the bots -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    description: str  # English; marked for the catalogue (translated menus: localizer._)
    # For project commands: how the question is phrased, and the usage hint with an example.
    question: str | None = None
    example: str | None = None

    @property
    def usage_hint(self) -> str:
        return self.usage(ENGLISH)

    def usage(self, loc: Localizer) -> str:
        return loc._("Usage: /{command} <project>, for example /{command} {example}").format(
            command=self.name, example=self.example
        )

    def question_for(self, project: str) -> str:
        assert self.question is not None
        return self.question.format(project=project)


PROJECT_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("research", N_("Full research on a project"), "Research {project}", "Uniswap"),
    CommandSpec(
        "price", N_("Price, market and on-chain data"), "{project} price and market data", "ETH"
    ),
    CommandSpec("sentiment", N_("What the crowd and the news say"), "{project} sentiment", "PEPE"),
    CommandSpec(
        "tokenomics", N_("Supply, unlocks and contract risks"), "{project} tokenomics", "ARB"
    ),
    CommandSpec(
        "team", N_("Team and development activity"), "{project} team and developers", "Solana"
    ),
)
OTHER_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("start", N_("What ChainLens does")),
    CommandSpec("help", N_("How to ask, and every command")),
    CommandSpec("usage", N_("Requests left today")),
    CommandSpec("upgrade", N_("More requests with Pro")),
    CommandSpec("link", N_("Share one account across Telegram, Discord and the web")),
    CommandSpec("alpha", N_("Subscribe this chat to the daily alpha report")),
    CommandSpec("watch", N_("Add a project to your watchlist")),
    CommandSpec("unwatch", N_("Remove a project from your watchlist")),
    CommandSpec("watchlist", N_("Your watchlist")),
    CommandSpec("alert", N_("Price, move, risk or sentiment alert on a project")),
    CommandSpec("alerts", N_("Your alerts (and their ids)")),
    CommandSpec("lang", N_("Reply language: English, Tiếng Việt or automatic")),
)


def command_menu() -> list[CommandSpec]:
    """The command menu in the order a newcomer reads it."""
    return [OTHER_COMMANDS[0], *PROJECT_COMMANDS, *OTHER_COMMANDS[1:]]


# --- progress --------------------------------------------------------------------------------


# What each tool's state looks like in progress lines (partial: some sources did not answer).
TOOL_MARKS = {"running": "⏳", "done": "✅", "partial": "🟡", "failed": "⚠️"}


class Progress:
    """What a long answer shows while it is being built: project, tools running/done, text."""

    def __init__(self, loc: Localizer = ENGLISH) -> None:
        self.loc = loc
        self.project: str | None = None
        self.tools: dict[str, str] = {}  # tool -> "running" | "done" | "partial" | "failed"
        self.text = ""
        self.final: Any = None  # the final (or error) event, once it arrived
        # a comparison runs each tool once per project: (tool, project id) -> state
        self._runs: dict[tuple[str, str | None], str] = {}

    def apply(self, event: Any) -> bool:
        """Take one chat event; True when the plan arrived (worth showing at once)."""
        if event.type == "plan":
            projects = getattr(event, "projects", None) or []
            self.project = (
                " vs ".join(p.display for p in projects)
                if projects
                else event.project.display
                if event.project
                else None
            )
            self.tools = dict.fromkeys(event.plan.tools, "running")
            return True
        if event.type == "tool_started":
            self._run(event, "running")
        elif event.type == "tool_finished":
            partial = getattr(event, "partial", False)
            self._run(event, "failed" if not event.ok else "partial" if partial else "done")
        elif event.type == "text":
            self.text += event.text
        elif event.type in ("final", "error") and (self.final is None or event.type == "final"):
            self.final = event
        return False

    def _run(self, event: Any, state: str) -> None:
        """One tool's state over every project it runs for: running while any run is,
        failed when all failed, partial when some failed or were partial, else done."""
        self._runs[(event.tool, getattr(event, "project_id", None))] = state
        states = {s for (tool, _), s in self._runs.items() if tool == event.tool}
        self.tools[event.tool] = (
            "running"
            if "running" in states
            else "failed"
            if states == {"failed"}
            else "partial"
            if states & {"failed", "partial"}
            else "done"
        )

    @property
    def answer(self) -> str:
        return getattr(self.final, "answer", None) or self.loc._(
            "Sorry, I could not build an answer this time."
        )

    def status_line(self) -> str:
        """One line: the project and each tool's state (no answer text)."""
        parts = [f"🎯 {self.project}"] if self.project else []
        if self.tools:
            parts.append(self.tool_line())
        return "  ".join(parts) if parts else self.loc._("🔎 Working on it…")

    def tool_line(self) -> str:
        """Each tool's state: ⏳ running, ✅ done, 🟡 partial (some sources missing), ⚠️ failed."""
        partial = " " + self.loc._("(partial)")
        return "  ".join(
            f"{TOOL_MARKS[s]} {tool_label(t, self.loc)}" + (partial if s == "partial" else "")
            for t, s in self.tools.items()
        )

    def render(self) -> str:
        lines = []
        if self.project:
            lines.append(f"🎯 {self.project}")
        if self.tools:
            lines.append(self.tool_line())
        if self.text:
            lines.append("")
            lines.append(self.text)
        elif not self.tools:
            lines.append(self.loc._("🔎 Working on it…"))
        return "\n".join(lines)


# --- markdown -> Telegram HTML -----------------------------------------------------------------

_md = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])
_SAFE_SCHEMES = ("http://", "https://", "tg://", "mailto:")
_INLINE_TAGS = {"strong": "b", "em": "i", "s": "s"}


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True, slots=True)
class RenderedPart:
    html: str  # Telegram HTML
    plain: str  # the same visible text without markup


class _Out:
    """Builds the HTML and the plain text of one rendering side by side."""

    def __init__(self) -> None:
        self.html: list[str] = []
        self.plain: list[str] = []

    def text(self, value: str) -> None:
        self.html.append(html.escape(value, quote=False))
        self.plain.append(value)

    def tag(self, value: str) -> None:
        self.html.append(value)

    def result(self) -> RenderedPart:
        return RenderedPart(
            html="".join(self.html).strip("\n"), plain="".join(self.plain).strip("\n")
        )


def _inline(children: Sequence[Token], out: _Out, *, outer: int) -> None:
    """Inline tokens. `outer` counts entities enclosing this run (heading bold, blockquote),
    inside which Telegram allows no `<code>`."""
    open_tags: list[str] = []
    for tok in children:
        if tok.type == "text":
            out.text(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            out.text("\n")
        elif tok.type == "code_inline":
            if open_tags or outer:
                out.text(tok.content)  # code cannot sit inside another entity
            else:
                out.tag("<code>")
                out.text(tok.content)
                out.tag("</code>")
        elif tok.type.endswith("_open") and tok.tag in _INLINE_TAGS:
            name = _INLINE_TAGS[tok.tag]
            out.tag(f"<{name}>")
            open_tags.append(name)
        elif tok.type.endswith("_close") and tok.tag in _INLINE_TAGS:
            if open_tags:
                out.tag(f"</{open_tags.pop()}>")
        elif tok.type == "link_open":
            href = str(tok.attrGet("href") or "")
            if href.startswith(_SAFE_SCHEMES) and "a" not in open_tags:
                out.tag(f'<a href="{html.escape(href, quote=True)}">')
                open_tags.append("a")
            else:
                open_tags.append("")
        elif tok.type == "link_close":
            if open_tags:
                name = open_tags.pop()
                if name:
                    out.tag(f"</{name}>")
        elif tok.type == "image":
            out.text(tok.content or "image")
        else:  # html_inline (html is off, but be safe) and anything new: literal text
            out.text(tok.content)
    while open_tags:  # markdown-it balances these; this only guards the invariant
        name = open_tags.pop()
        if name:
            out.tag(f"</{name}>")


def _plain_inline(children: Sequence[Token]) -> str:
    """The visible text of inline tokens (a table cell), without markup."""
    parts = []
    for tok in children:
        if tok.type in ("text", "code_inline", "image", "html_inline"):
            parts.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


def display_width(text: str) -> int:
    """Columns a monospace font gives `text` (wide CJK/emoji count two, combining marks none)."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def aligned_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as aligned monospace text, a rule under the header row."""
    columns = max((len(r) for r in rows), default=0)
    padded = [list(r) + [""] * (columns - len(r)) for r in rows]
    widths = [max(display_width(r[i]) for r in padded) for i in range(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c + " " * (w - display_width(c)) for c, w in zip(cells, widths, strict=False)
        ).rstrip()

    out = [line(padded[0]), "  ".join("-" * w for w in widths)] if padded else []
    out += [line(r) for r in padded[1:]]
    return "\n".join(out)


def tables_as_code_blocks(markdown: str) -> str:
    """Each markdown table replaced by a fenced block of aligned monospace text (for platforms
    without tables, e.g. Discord), the rest unchanged."""
    lines = markdown.split("\n")
    replacements: list[tuple[int, int, list[str]]] = []
    rows: list[list[str]] = []
    span: tuple[int, int] | None = None
    for tok in _md.parse(markdown):
        if tok.type == "table_open" and tok.map is not None:
            rows, span = [], (tok.map[0], tok.map[1])
        elif span is not None and tok.type == "tr_open":
            rows.append([])
        elif span is not None and tok.type == "inline" and rows:
            rows[-1].append(_plain_inline(tok.children or []))
        elif span is not None and tok.type == "table_close":
            replacements.append(
                (span[0], span[1], ["```", *aligned_table(rows).split("\n"), "```"])
            )
            span = None
    for start, end, block in reversed(replacements):
        lines[start:end] = block
    return "\n".join(lines)


def _render_tokens(tokens: Sequence[Token], out: _Out) -> None:
    lists: list[list[int]] = []  # one counter per open list (0 = bullets)
    quote_depth = 0
    item_prefix: str | None = None
    table: list[list[str]] | None = None  # a table's cells while inside one
    for tok in tokens:
        kind = tok.type
        if table is not None:
            # Telegram has no tables: a markdown table becomes aligned monospace text.
            if kind == "tr_open":
                table.append([])
            elif kind == "inline" and table:
                table[-1].append(_plain_inline(tok.children or []))
            elif kind == "table_close":
                if quote_depth:
                    out.text(aligned_table(table))
                else:
                    out.tag("<pre>")
                    out.text(aligned_table(table))
                    out.tag("</pre>")
                out.text("\n\n")
                table = None
            continue
        if kind == "table_open":
            table = []
            continue
        if kind == "heading_open":
            out.tag("<b>")
        elif kind == "heading_close":
            out.tag("</b>")
            out.text("\n\n")
        elif kind == "paragraph_open":
            if item_prefix is not None:
                out.text(item_prefix)
                item_prefix = None
        elif kind == "paragraph_close":
            out.text("\n" if lists else "\n\n")
        elif kind == "inline":
            inside_heading = bool(out.html) and out.html[-1] == "<b>"
            _inline(tok.children or [], out, outer=int(inside_heading) + quote_depth)
        elif kind in ("bullet_list_open", "ordered_list_open"):
            start = int(tok.attrGet("start") or 1) if kind == "ordered_list_open" else 0
            lists.append([start])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists:
                out.text("\n")
        elif kind == "list_item_open":
            indent = "   " * (len(lists) - 1)
            counter = lists[-1]
            if counter[0]:
                item_prefix = f"{indent}{counter[0]}. "
                counter[0] += 1
            else:
                item_prefix = f"{indent}• "
        elif kind == "blockquote_open":
            if quote_depth == 0:
                out.tag("<blockquote>")
            quote_depth += 1
        elif kind == "blockquote_close":
            quote_depth -= 1
            if quote_depth == 0:
                while out.plain and out.plain[-1] in ("\n", "\n\n"):
                    out.plain.pop()
                    out.html.pop()
                out.tag("</blockquote>")
                out.text("\n\n")
        elif kind in ("fence", "code_block"):
            code = tok.content.rstrip("\n")
            if quote_depth:
                out.text(code)  # no <pre> inside a blockquote
            else:
                language = (tok.info or "").split()[0] if tok.info else ""
                if language and language.replace("-", "").replace("_", "").isalnum():
                    out.tag(f'<pre><code class="language-{language}">')
                    out.text(code)
                    out.tag("</code></pre>")
                else:
                    out.tag("<pre>")
                    out.text(code)
                    out.tag("</pre>")
            out.text("\n\n")
        elif kind == "hr":
            out.text("———\n\n")
        elif kind == "tr_close":
            out.text("\n")
        elif kind in ("th_open", "td_open"):
            if out.plain and not out.plain[-1].endswith("\n") and out.plain[-1] != "":
                out.text(" | ")
        elif kind == "table_close":
            out.text("\n")
        elif kind == "html_block":
            out.text(tok.content)


def markdown_to_telegram(markdown: str) -> RenderedPart:
    """One piece of markdown as Telegram HTML and as plain text (no size limit applied)."""
    out = _Out()
    _render_tokens(_md.parse(markdown), out)
    return out.result()


def markdown_to_telegram_html(markdown: str) -> str:
    """Our answer markdown as Telegram HTML (only tags Telegram accepts, always nested)."""
    return markdown_to_telegram(markdown).html


def markdown_to_plain(markdown: str) -> str:
    """The visible text of the markdown, without any markup."""
    return markdown_to_telegram(markdown).plain


# --- splitting -------------------------------------------------------------------------------


def markdown_blocks(markdown: str) -> list[str]:
    """The top-level blocks of a markdown text (paragraphs, lists, code fences, tables)."""
    lines = markdown.split("\n")
    blocks: list[str] = []
    for tok in _md.parse(markdown):
        if tok.level == 0 and tok.nesting in (0, 1) and tok.map is not None:
            start, end = tok.map
            block = "\n".join(lines[start:end]).strip("\n")
            if block:
                blocks.append(block)
    return blocks or ([markdown] if markdown.strip() else [])


def telegram_length(markdown: str) -> int:
    """What Telegram counts against its limit: the rendered text's UTF-16 length."""
    return utf16_len(markdown_to_plain(markdown))


Measure = Callable[[str], int]


def _fits(markdown: str, limit: int, measure: Measure = telegram_length) -> bool:
    return measure(markdown) <= limit


def _split_oversized(block: str, limit: int, measure: Measure = telegram_length) -> list[str]:
    """A block too long for one message: by lines, then a hard cut of a single long line."""
    pieces: list[str] = []
    current = ""
    for line in block.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if _fits(candidate, limit, measure):
            current = candidate
            continue
        if current:
            pieces.append(current)
        current = ""
        if _fits(line, limit, measure):
            current = line
            continue
        pieces.extend(_cut_line(line, limit, measure))
    if current:
        pieces.append(current)
    return pieces


def _cut_line(line: str, limit: int, measure: Measure) -> list[str]:
    """One line longer than a whole message, cut into pieces that each fit (a piece that
    would start a heading, list or quote is escaped so it stays literal text)."""
    pieces = []
    rest = line
    while rest:
        size = min(len(rest), max(1, limit - 1))
        while True:
            piece = rest[:size]
            if piece[:1] in "#>-*+`|=_~":
                piece = "\\" + piece
            if size == 1 or _fits(piece, limit, measure):
                break
            size = max(1, size * 3 // 4)  # wide characters count double in UTF-16
        pieces.append(piece)
        rest = rest[size:]
    return pieces


def split_markdown(
    markdown: str, limit: int = TELEGRAM_LIMIT, measure: Measure = telegram_length
) -> list[str]:
    """Split markdown at paragraph (block) boundaries so each part is under `limit` as
    `measure` counts it: Telegram's rendered length by default; `len` of the markdown itself
    for platforms that render markdown (Discord)."""
    packed: list[str] = []
    current: list[str] = []
    size = 0
    # Blocks render independently and are joined by a blank line, so a part's visible length
    # is the sum of its blocks' plus two per join: each block is parsed once, not per try.
    for block in markdown_blocks(markdown):
        length = measure(block)
        if length > limit:
            if current:
                packed.append("\n\n".join(current))
                current, size = [], 0
            packed.extend(_split_oversized(block, limit, measure))
            continue
        extra = length + (2 if current else 0)
        if current and size + extra > limit:
            packed.append("\n\n".join(current))
            current, size = [block], length
        else:
            current.append(block)
            size += extra
    if current:
        packed.append("\n\n".join(current))
    parts: list[str] = []
    for part in packed:  # the sum is exact for our renderer; check anyway, it is cheap
        parts.extend(
            [part] if _fits(part, limit, measure) else _split_oversized(part, limit, measure)
        )
    return parts or [""]


def render_telegram(markdown: str, limit: int = TELEGRAM_LIMIT) -> list[RenderedPart]:
    """The answer as Telegram messages: each part's HTML and plain text, each under `limit`."""
    rendered = [markdown_to_telegram(part) for part in split_markdown(markdown, limit)]
    return [part for part in rendered if part.plain.strip()] or [RenderedPart("…", "…")]


def split_message(text: str, limit: int) -> list[str]:
    """Split on paragraph, then line boundaries so each part fits the platform's limit."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # a single over-long line: hard split
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current:
        parts.append(current)
    return parts or [""]


# --- buttons ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Button:
    """A button under a message. `action` says what a press does:
    "ask" (a follow-up question, `arg` = the question's kind:project id), "research" (a
    did-you-mean suggestion, `arg` = project id), "upgrade" (start Checkout)."""

    label: str
    action: str
    arg: str = ""

    @property
    def data(self) -> str:
        """Compact callback data (Telegram allows 64 bytes, Discord custom ids 100)."""
        return f"{self.action}:{self.arg}" if self.arg else self.action


FOLLOW_UPS: tuple[tuple[str, str, str], ...] = (
    # kind, label, question (the planner's words pick exactly that tool)
    ("sentiment", N_("Sentiment"), "{project} sentiment"),
    ("tokenomics", N_("Tokenomics"), "{project} tokenomics"),
    ("team", N_("Team"), "{project} team and developers"),
    ("chart", N_("Chart"), "{project} price chart"),
)
UPGRADE_LABEL = N_("⭐ Upgrade")
_CALLBACK_LIMIT = 64


def parse_button(data: str) -> Button | None:
    """The button a callback's data stands for; None when it is not one of ours."""
    action, _, arg = data.partition(":")
    if action == "upgrade":
        return Button("Upgrade", "upgrade")
    if action == "research" and arg:
        return Button(arg, "research", arg)
    kind, _, project_id = arg.partition(":")
    if action == "ask" and project_id and kind in {k for k, _, _ in FOLLOW_UPS}:
        return Button(arg, "ask", arg)
    return None


def button_question(button: Button) -> str:
    """The question a follow-up or suggestion button asks on the user's behalf (the project
    by its id, which the resolver maps back exactly)."""
    if button.action == "research":
        return f"Research {button.arg}"
    kind, _, project_id = button.arg.partition(":")
    template = next(q for k, _, q in FOLLOW_UPS if k == kind)
    return template.format(project=project_id)


def upgrade_button(loc: Localizer = ENGLISH) -> Button:
    return Button(loc._(UPGRADE_LABEL), "upgrade")


def answer_buttons(final: Any, *, upgrade: bool, loc: Localizer = ENGLISH) -> list[list[Button]]:
    """The buttons under an answer: follow-ups on its project, did-you-mean suggestions,
    and Upgrade when it helps (a free account)."""
    rows: list[list[Button]] = []
    project = getattr(final, "project", None)
    if project is not None:
        row = [Button(loc._(label), "ask", f"{kind}:{project.id}") for kind, label, _ in FOLLOW_UPS]
        row = [b for b in row if len(b.data.encode()) <= _CALLBACK_LIMIT]
        if row:
            rows.append(row)
    else:
        suggestions = list(getattr(final, "suggestions", None) or [])[:4]
        row = [
            Button(s.display, "research", s.id)
            for s in suggestions
            if len(f"research:{s.id}".encode()) <= _CALLBACK_LIMIT
        ]
        if row:
            rows.append(row)
    if upgrade:
        rows.append([upgrade_button(loc)])
    return rows
