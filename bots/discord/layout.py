"""An answer as Discord messages within Discord's limits (pure functions, no network).

Discord refuses a message past any of these, with 400 "Invalid Form Body" (code 50035):
content 2,000 characters; per embed a title of 256, a description of 4,096, 25 fields of
1,024 (names 256), a footer of 2,048; 10 embeds and 6,000 characters across all embeds of
one message. A longer answer continues in follow-up messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import discord
from markdown_it import MarkdownIt

from bots.render import Progress, split_message, tables_as_code_blocks, tool_label
from chainlens.i18n import ENGLISH, Localizer

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELDS_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBEDS_LIMIT = 10
EMBED_TOTAL_LIMIT = 6000

CHART_FILENAME = "chart.png"
BRAND_COLOUR = discord.Colour.from_rgb(59, 91, 219)
STANCE_COLOURS: dict[str, discord.Colour] = {
    "BUY": discord.Colour.from_rgb(47, 158, 68),
    "HOLD": discord.Colour.from_rgb(240, 140, 0),
    "SELL": discord.Colour.from_rgb(232, 89, 12),
    "AVOID": discord.Colour.from_rgb(224, 49, 49),
    "NO CALL": discord.Colour.from_rgb(134, 142, 150),
}
_FENCE = "```"
_markdown = MarkdownIt("commonmark")
_with_tables = MarkdownIt("commonmark").enable("table")
SPACER = "\u200b"  # a field with no visible name or value (keeps an inline grid's columns)


@dataclass
class OutgoingMessage:
    """One Discord message of an answer: its embeds, and whether it carries the chart."""

    embeds: list[discord.Embed] = field(default_factory=list)
    chart: bool = False

    def total(self) -> int:
        return sum(len(embed) for embed in self.embeds)


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def to_discord_markdown(markdown: str) -> str:
    """Our answer markdown as Discord markdown: headings become bold lines (embeds do not
    render `#` headings); everything else Discord renders as is. Headings are found through
    the parser's token stream, so a `#` inside a code block or a paragraph stays put."""
    markdown = tables_as_code_blocks(markdown)  # Discord has no tables: aligned monospace
    lines = markdown.split("\n")
    for token in _markdown.parse(markdown):
        if token.type == "heading_open" and token.map is not None:
            start, end = token.map
            heading = " ".join(lines[i].strip().lstrip("#").strip() for i in range(start, end))
            lines[start] = f"**{heading.strip('*').strip()}**" if heading else ""
            for i in range(start + 1, end):
                lines[i] = ""
    return "\n".join(lines).strip()


def split_text(text: str, limit: int) -> list[str]:
    """Split at paragraph/line boundaries under `limit`; a code block cut in two is closed at
    the end of one part and reopened at the start of the next."""
    parts = split_message(text, limit - 2 * (len(_FENCE) + 1))
    balanced: list[str] = []
    reopen = False
    for part in parts:
        if reopen:
            part = f"{_FENCE}\n{part}"
        reopen = part.count(_FENCE) % 2 == 1
        if reopen:
            part = f"{part}\n{_FENCE}"
        balanced.append(part)
    return [p for p in balanced if p.strip()] or [""]


def stance_colour(stance: str | None) -> discord.Colour:
    return STANCE_COLOURS.get(stance or "", BRAND_COLOUR)


def tool_fields(final: Any, loc: Localizer = ENGLISH) -> list[tuple[str, str]]:
    """One (name, value) per tool the answer used: its key facts, within field limits."""
    from agent.facts import facts_of, human_age

    fields: list[tuple[str, str]] = []
    for tool, result in (getattr(final, "results", None) or {}).items():
        facts = facts_of(result, loc)[:4]
        value = "\n".join(f"• {fact}" for fact in facts) or loc._("No usable data this time.")
        if getattr(result, "stale", False):
            value += (
                "\n_"
                + loc._("older snapshot ({age})").format(age=human_age(result.age_seconds, loc))
                + "_"
            )
        name = tool_label(tool, loc)
        fields.append((clip(name, FIELD_NAME_LIMIT), clip(value, FIELD_VALUE_LIMIT)))
    return fields[:FIELDS_LIMIT]


def table_fields(markdown: str) -> tuple[str, list[tuple[str, str]]]:
    """The answer's first markdown table (a comparison's) as inline embed fields, and the
    answer without it. Each column after the first becomes one field a row of the grid,
    "**label**: value" a line (empty cells left out); when a column is longer than a field
    holds it goes on in the next row of fields, every column cut at the same table row. With
    two columns a spacer field fills the third place, so Discord keeps them side by side."""
    tokens = _with_tables.parse(markdown)
    rows: list[list[str]] = []
    span: tuple[int, int] | None = None
    for tok in tokens:
        if tok.type == "table_open" and tok.map is not None and span is None:
            span = (tok.map[0], tok.map[1])
        elif span is not None and tok.type == "tr_open":
            rows.append([])
        elif span is not None and tok.type == "inline" and rows:
            rows[-1].append(
                "".join(c.content for c in tok.children or [] if c.type in ("text", "code_inline"))
            )
        elif span is not None and tok.type == "table_close":
            break
    if span is None or len(rows) < 2 or len(rows[0]) < 2:
        return markdown, []
    lines = markdown.split("\n")
    before, after = "\n".join(lines[: span[0]]).rstrip(), "\n".join(lines[span[1] :]).lstrip()
    rest = f"{before}\n\n{after}" if before and after else before or after
    header, body = rows[0], rows[1:]
    columns = len(header) - 1

    def cell(row: list[str], column: int) -> str | None:
        value = row[column + 1].strip() if column + 1 < len(row) else ""
        return f"**{row[0].strip()}**: {value}" if value and value != "—" else None

    groups: list[list[list[str]]] = []  # groups of rows; a row is one line per column
    current: list[list[str]] = [[] for _ in range(columns)]
    for row in body:
        cells = [cell(row, c) for c in range(columns)]
        grown = [len("\n".join([*current[c], cells[c] or ""])) for c in range(columns)]
        if any(current) and max(grown) > FIELD_VALUE_LIMIT:
            groups.append(current)
            current = [[] for _ in range(columns)]
        for c, text in enumerate(cells):
            if text is not None:
                current[c].append(text)
    groups.append(current)
    fields: list[tuple[str, str]] = []
    for index, group in enumerate(groups):
        for c in range(columns):
            name = header[c + 1].strip() if index == 0 else SPACER
            fields.append(
                (
                    clip(name, FIELD_NAME_LIMIT) or SPACER,
                    clip("\n".join(group[c]), FIELD_VALUE_LIMIT) or SPACER,
                )
            )
        if columns == 2:
            fields.append((SPACER, SPACER))
    return rest.strip() + "\n", fields[:FIELDS_LIMIT]


def sources_footer(final: Any, loc: Localizer = ENGLISH) -> str:
    """The sources and their data age in one line (footers cannot hold links)."""
    from agent.facts import human_age

    names: list[str] = []
    for source in getattr(final, "sources", None) or []:
        label = source.source + (f" ({human_age(source.age_seconds, loc)})" if source.stale else "")
        if label not in names:
            names.append(label)
    text = (loc._("Sources: {sources}").format(sources=" · ".join(names)) + " — ") if names else ""
    return clip(text + loc._("ChainLens · not financial advice"), FOOTER_LIMIT)


def answer_messages(
    text: str,
    *,
    title: str | None,
    colour: discord.Colour,
    fields: Sequence[tuple[str, str]] = (),
    footer: str | None = None,
    chart: bool = False,
    inline: bool = False,
) -> list[OutgoingMessage]:
    """The answer as messages in reading order: the text in description-sized parts packed
    into messages under the 6,000/10-embed limits, then the tool fields (side by side when
    `inline`: a comparison's columns), the chart and the sources on the last embed (or an
    embed of their own when they do not fit)."""
    messages = [OutgoingMessage()]
    for index, chunk in enumerate(split_text(to_discord_markdown(text), DESCRIPTION_LIMIT)):
        embed = discord.Embed(description=chunk, colour=colour)
        if index == 0 and title:
            embed.title = clip(title, TITLE_LIMIT)
        current = messages[-1]
        if current.embeds and (
            current.total() + len(embed) > EMBED_TOTAL_LIMIT or len(current.embeds) >= EMBEDS_LIMIT
        ):
            current = OutgoingMessage()
            messages.append(current)
        current.embeds.append(embed)

    target = messages[-1].embeds[-1]
    # Fields, then the footer, join the last embed while the message stays under 6,000
    # characters and 25 fields; past that they open a new embed, or a new message.
    for name, value in fields[:FIELDS_LIMIT]:
        name = clip(name, FIELD_NAME_LIMIT) or "\u200b"
        value = clip(value, FIELD_VALUE_LIMIT) or "\u200b"
        target = _room_for(
            messages,
            target,
            len(name) + len(value),
            colour,
            fields_full=len(target.fields) >= FIELDS_LIMIT,
        )
        target.add_field(name=name, value=value, inline=inline)
    if footer:
        footer = clip(footer, FOOTER_LIMIT)
        target = _room_for(messages, target, len(footer), colour, fields_full=False)
        target.set_footer(text=footer)
    if chart:
        target.set_image(url=f"attachment://{CHART_FILENAME}")
        messages[-1].chart = True
    return messages


def _room_for(
    messages: list[OutgoingMessage],
    target: discord.Embed,
    size: int,
    colour: discord.Colour,
    *,
    fields_full: bool,
) -> discord.Embed:
    """`target` if `size` more characters fit its message, else a fresh embed placed in the
    last message or, when that is full, in a new one."""
    current = messages[-1]
    if not fields_full and current.total() + size <= EMBED_TOTAL_LIMIT:
        return target
    embed = discord.Embed(colour=colour)
    if current.total() + size > EMBED_TOTAL_LIMIT or len(current.embeds) >= EMBEDS_LIMIT:
        current = OutgoingMessage()
        messages.append(current)
    current.embeds.append(embed)
    return embed


def plain_text_parts(text: str) -> list[str]:
    """The answer as plain message contents under 2,000 characters (the last-resort form)."""
    return split_text(to_discord_markdown(text), CONTENT_LIMIT)


def progress_content(progress: Progress) -> str:
    """What the deferred message shows while the answer is written, within 2,000 characters:
    the project and tool lines, then as much of the newest text as fits."""
    rendered = progress.render()
    if len(rendered) <= CONTENT_LIMIT:
        return rendered
    head, _, body = rendered.partition("\n\n")
    room = CONTENT_LIMIT - len(head) - 3
    return f"{head}\n\n…{body[-room:]}" if room > 0 else clip(rendered, CONTENT_LIMIT)
