"""The `project` option: autocomplete choices from the coin index, and the question text.

The index has exact lookups (name, ticker, address) for resolution; autocomplete needs
prefix matching as the user types, ranked by market cap.
"""

from __future__ import annotations

from discord import app_commands

from chainlens.deps import Deps
from tools.index import (
    CoinIndex,
    IndexEntry,
    compact,
    load_index,
    normalize,
    rank_order,
)

MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
_CHOICE_NAME_LIMIT = 100


def search_index(index: CoinIndex, typed: str, limit: int = MAX_CHOICES) -> list[IndexEntry]:
    """Coins matching what the user typed so far: exact ticker first, then names and ids
    starting with it, then containing it; each group by market cap. Empty input lists the
    largest coins."""
    text = typed.strip().lstrip("$")
    key, flat = normalize(text), compact(text)
    if not flat:
        return index.entries()[:limit]
    ranked: list[tuple[int, tuple[bool, int, str], IndexEntry]] = []
    for entry in index.entries():
        names = {compact(entry.name), compact(entry.id), *(compact(a) for a in entry.aliases)}
        symbol = entry.symbol.lower()
        if symbol == flat:
            group = 0
        elif any(n.startswith(flat) for n in names) or symbol.startswith(flat):
            group = 1
        elif any(flat in n for n in names) or (key and key in normalize(entry.name)):
            group = 2
        else:
            continue
        ranked.append((group, rank_order(entry), entry))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [entry for _, _, entry in ranked[:limit]]


async def project_choices(deps: Deps, typed: str) -> list[app_commands.Choice[str]]:
    """Autocomplete choices: "Uniswap (UNI)" shown, the CoinGecko id sent back."""
    index = await load_index(deps)
    return [
        app_commands.Choice(name=f"{e.name} ({e.symbol.upper()})"[:_CHOICE_NAME_LIMIT], value=e.id)
        for e in search_index(index, typed[:100])
    ]


def project_question(project: str) -> str:
    """How a question names the project: an autocomplete choice sends the CoinGecko id,
    which the resolver knows exactly; typed words pass through, whitespace collapsed."""
    return " ".join(project.split())[:100]
