"""The language a bot replies in, and the `/lang` choice: the same rules in both bots.

A reply to a message the user wrote follows `agent.language.detect_language`: the message's
own language, else the account's saved choice (`/lang`, the account page), else the
platform's hint (Telegram `language_code`, Discord `interaction.locale` then `guild_locale`),
else English. A command without free text (`/help`, `/usage`, a button) has nothing of its own
to go on, so it follows the saved choice, then the hint. Questions a bot phrases itself
(`/research X` becomes "Research X", a follow-up button "X sentiment") take the language of
the user's own words in them (the project name says nothing, so: saved choice, then hint),
never that of our English template: `UserLanguage.turn()` gives the chat service both.

The choice is stored on the account (`billing.accounts.set_language`), which every channel of
a linked account shares; "auto" clears it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.language import detect_language
from billing.accounts import language_of_identity
from chainlens.deps import Deps
from chainlens.i18n import N_, Language, Localizer, as_language, localizer

LanguageChoice = Literal["en", "vi", "auto"]
LANGUAGE_CHOICES: tuple[LanguageChoice, ...] = ("en", "vi", "auto")
# Each language named in itself (what a user looks for in a language menu): not translated.
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "vi": "Tiếng Việt"}
AUTO_LABEL = N_("Auto")
_ALIASES: dict[str, LanguageChoice] = {
    "en": "en",
    "english": "en",
    "eng": "en",
    "tieng anh": "en",
    "tiếng anh": "en",
    "vi": "vi",
    "vn": "vi",
    "vietnamese": "vi",
    "tieng viet": "vi",
    "tiếng việt": "vi",
    "auto": "auto",
    "automatic": "auto",
    "reset": "auto",
    "default": "auto",
    "tu dong": "auto",
    "tự động": "auto",
}


def parse_choice(text: str) -> LanguageChoice | None:
    """'vi', 'VI', 'Tiếng Việt', 'english', 'auto' -> the choice; None for anything else."""
    return _ALIASES.get(" ".join(text.lower().split()))


def platform_hint(*locales: str | None) -> str | None:
    """The platform's locales, most specific first (Discord: the user's, then the server's),
    as one hint for `detect_language` (an Accept-Language-like list: the first supported
    language wins)."""
    present = [value for value in locales if value]
    return ",".join(present) or None


@dataclass(frozen=True, slots=True)
class UserLanguage:
    """What a bot knows about one user's language: their saved choice and the platform hint."""

    saved: str | None
    hint: str | None

    def of(self, own_words: str = "") -> Language:
        """The reply's language: `own_words` (what the user typed, if anything) decide first."""
        return detect_language(own_words, saved=self.saved, hint=self.hint)

    def loc(self, own_words: str = "") -> Localizer:
        return localizer(self.of(own_words))

    @property
    def choice(self) -> LanguageChoice:
        saved = as_language(self.saved)
        return saved if saved is not None else "auto"


async def user_language(deps: Deps, identity: str, hint: str | None) -> UserLanguage:
    """The user's saved choice (one read; no account is created) and the platform's hint."""
    return UserLanguage(saved=await language_of_identity(deps, identity), hint=hint)


def choice_label(choice: LanguageChoice, loc: Localizer) -> str:
    """How a choice is shown on a button or in a confirmation."""
    return LANGUAGE_NAMES[choice] if choice != "auto" else loc._(AUTO_LABEL)


def current_choice_text(language: UserLanguage, loc: Localizer) -> str:
    """/lang without an argument: the current choice and what it means."""
    if language.choice != "auto":
        return loc._(
            "Language: {language}. A message written in another language is still "
            "answered in that language."
        ).format(language=LANGUAGE_NAMES[language.choice])
    return loc._(
        "Language: automatic. I answer in the language of your message; commands "
        "and buttons follow your app's language ({language})."
    ).format(language=LANGUAGE_NAMES[language.of()])


def choice_set_text(choice: LanguageChoice, loc: Localizer) -> str:
    """The confirmation, in the language now in force (`loc`)."""
    if choice == "auto":
        return loc._(
            "Language set to automatic: I answer in the language of your message, "
            "and otherwise in your app's language."
        )
    return loc._(
        "Language set to {language}. A message written in another language is still "
        "answered in that language."
    ).format(language=LANGUAGE_NAMES[choice])


USAGE = N_("Usage: /lang en, /lang vi or /lang auto")
