"""Languages: one gettext message catalogue per language, and locale-aware number formatting.

English is the source language: its strings are the msgids written in the code, so the English
`Localizer` needs no catalogue and formats numbers exactly as the product always has. Every
other language has `chainlens/locale/<lang>/LC_MESSAGES/chainlens.po`, read with Babel and
compiled in memory on first use (no .mo binaries in the repository). `chainlens/locale/
chainlens.pot` is the template extracted from the code (`pybabel extract`, keywords `_`,
`ngettext`, `N_`); a test checks that the template matches the code and that every language
translates every message.

Usage: `loc = localizer("vi"); loc._("Key risks")`, `loc.usd(1.52e9)` -> "1,52 tỷ USD".
Bots, web pages and reports can use the same catalogue: add their strings with `_()` and
re-extract.
"""

from __future__ import annotations

import functools
import io
import unicodedata
from datetime import date, datetime
from importlib import resources
from typing import Literal, get_args

from babel import Locale
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

Language = Literal["en", "vi"]
LANGUAGES: tuple[Language, ...] = get_args(Language)
DEFAULT_LANGUAGE: Language = "en"
DOMAIN = "chainlens"


def fold(text: str) -> str:
    """Lower case without diacritics:
    'Tokenomics của PEPE thế nào?' -> 'tokenomics cua pepe the nao?'."""
    decomposed = unicodedata.normalize("NFD", text.lower().replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def N_(message: str) -> str:
    """Mark a string for extraction where it is defined; translate it where it is shown."""
    return message


def po_path(language: str) -> str:
    """The catalogue's location inside the package (for tests and tooling)."""
    return f"locale/{language}/LC_MESSAGES/{DOMAIN}.po"


def load_catalogue(language: str) -> NullTranslations:
    """The language's translations, compiled in memory from its .po file."""
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    text = resources.files("chainlens").joinpath(po_path(language)).read_bytes()
    catalog = read_po(io.BytesIO(text), locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


def as_language(value: str | None) -> Language | None:
    """'vi', 'vi-VN', 'vi_VN' -> 'vi'; anything unsupported -> None."""
    if not value:
        return None
    primary = value.strip().replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGUAGES else None


class Localizer:
    """Messages and number/date formatting for one language."""

    def __init__(self, language: Language) -> None:
        self.language: Language = language
        self.locale = Locale.parse(language)
        self._translations = load_catalogue(language)

    # --- messages -----------------------------------------------------------------------------
    def _(self, message: str) -> str:
        return self._translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._translations.ngettext(singular, plural, n)

    # --- numbers ------------------------------------------------------------------------------
    @property
    def english(self) -> bool:
        return self.language == "en"

    def number(self, x: float, digits: int = 0) -> str:
        """Grouped number with fixed decimals: en 1,234.5 / vi 1.234,5."""
        if self.english:
            return f"{x:,.{digits}f}"
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(x, format=pattern, locale=self.locale)

    def count(self, n: int) -> str:
        """A count inside a sentence: en as the product always wrote it (2000), vi grouped
        (2.000)."""
        return str(n) if self.english else self.number(n)

    def pct(self, x: float, signed: bool = True, digits: int = 1) -> str:
        """A value already in percent: +3.2% / +3,2%."""
        if self.english:
            return f"{x:+.{digits}f}%" if signed else f"{x:.{digits}f}%"
        sign = ("+" if x >= 0 else "-") if signed else ("-" if x < 0 else "")
        return f"{sign}{self.number(abs(x), digits)}%"

    def share(self, x: float, digits: int = 0) -> str:
        """A 0..1 share as a percentage: 0.423 -> 42% / 42.3%."""
        if self.english:
            return f"{x:.{digits}%}"
        return f"{self.number(x * 100, digits)}%"

    def usd(self, x: float) -> str:
        """Compact money: en $1.52B / $4.50M / $12,345.00; vi 1,52 tỷ USD / 4,50 triệu USD."""
        if self.english:
            for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
                if abs(x) >= size:
                    return f"${x / size:.2f}{suffix}"
            if abs(x) >= 1:
                return f"${x:,.2f}"
            return f"${x:.6g}"
        for size, unit in ((1e12, N_("trillion")), (1e9, N_("billion")), (1e6, N_("million"))):
            if abs(x) >= size:
                return f"{self.number(x / size, 2)} {self._(unit)} USD"
        if abs(x) >= 1:
            return f"{self.number(x, 2)} USD"
        return f"{format_decimal(float(f'{x:.6g}'), format='0.##########', locale=self.locale)} USD"

    def date(self, d: date | datetime) -> str:
        """A calendar date: en 2026-03-04 / vi 04/03/2026."""
        if self.english:
            return f"{d:%Y-%m-%d}"
        return format_date(d, "dd/MM/yyyy", locale=self.locale)

    def age(self, seconds: float) -> str:
        """How old data is: en 'just now', '4 min old'; vi 'vừa xong', '4 phút trước'."""
        if seconds < 60:
            return self._("just now")
        if seconds < 3600:
            return self._("{n} min old").format(n=int(seconds // 60))
        if seconds < 86400:
            return self._("{n} h old").format(n=int(seconds // 3600))
        return self._("{n} days old").format(n=int(seconds // 86400))

    def join(self, items: list[str]) -> str:
        return ", ".join(items)


@functools.cache
def localizer(language: str | None = None) -> Localizer:
    """The (shared, immutable) localizer of a language; English for None or unsupported ones."""
    return Localizer(as_language(language) or DEFAULT_LANGUAGE)


ENGLISH = localizer("en")


class LazyText:
    """A message translated where it is shown, not where it is made: an exception raised deep
    in a service carries its msgid (marked with `N_` where it is written) and the values of its
    placeholders; each channel renders it in its user's language. Values that are `LazyText`
    themselves are rendered in the same language. `str()` is the English text."""

    __slots__ = ("msgid", "params")

    def __init__(self, msgid: str, /, **params: object) -> None:
        self.msgid = msgid
        self.params = params

    def render(self, loc: Localizer = ENGLISH) -> str:
        text = loc._(self.msgid)
        if not self.params:
            return text
        return text.format(
            **{
                name: value.render(loc) if isinstance(value, LazyText) else value
                for name, value in self.params.items()
            }
        )

    def __str__(self) -> str:
        return self.render(ENGLISH)

    def __repr__(self) -> str:
        return f"LazyText({self.msgid!r}, **{self.params!r})"
