"""Slash-command descriptions in the user's Discord language, from our message catalogue.

discord.py wraps every command, group and parameter description and every choice name in a
`locale_str` (`auto_locale_strings`), and on `CommandTree.sync()` asks the tree's translator
for each of them in each Discord locale; the answers go to Discord as
`description_localizations` / `name_localizations`, and a client set to Vietnamese shows the
Vietnamese text. Command, group and parameter *names* stay English: they are what users type
and what the handlers are registered under.
"""

from __future__ import annotations

from discord import Locale
from discord.app_commands import (
    TranslationContextLocation,
    TranslationContextTypes,
    Translator,
    locale_str,
)

from chainlens.i18n import DEFAULT_LANGUAGE, as_language, localizer

# Discord refuses a description or a choice name longer than this.
DESCRIPTION_LIMIT = 100
_TRANSLATED = frozenset(
    {
        TranslationContextLocation.command_description,
        TranslationContextLocation.group_description,
        TranslationContextLocation.parameter_description,
        TranslationContextLocation.choice_name,
    }
)


class CatalogueTranslator(Translator):
    """Translates descriptions and choice names through `chainlens.i18n` (English msgids)."""

    async def translate(
        self, string: locale_str, locale: Locale, context: TranslationContextTypes
    ) -> str | None:
        if context.location not in _TRANSLATED:
            return None
        language = as_language(locale.value)
        if language is None or language == DEFAULT_LANGUAGE:
            return None
        text = localizer(language)._(string.message)
        if text == string.message or not 0 < len(text) <= DESCRIPTION_LIMIT:
            return None  # not in the catalogue (or too long for Discord): the English stays
        return text
