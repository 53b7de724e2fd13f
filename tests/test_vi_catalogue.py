"""The message catalogues: the template matches the strings in the code, and every language
translates every message with the same placeholders."""

from __future__ import annotations

import io
import re
from importlib import resources
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from agent.assess import NOT_ADVICE
from agent.writer import NOT_ADVICE_MESSAGE
from chainlens.i18n import LANGUAGES, Localizer, localizer, po_path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "tools", "chainlens", "bots", "web", "reports", "billing")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
PLACEHOLDER = re.compile(r"\{(\w*)[^}]*\}")


def code_messages() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        if not (ROOT / package).is_dir():
            continue
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT / package), method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def template_messages() -> set[str]:
    text = resources.files("chainlens").joinpath("locale/chainlens.pot").read_bytes()
    return {m.id for m in read_po(io.BytesIO(text)) if m.id and isinstance(m.id, str)}


def test_template_matches_the_code() -> None:
    """Re-extract after changing a message: `pybabel extract -F chainlens/locale/babel.cfg
    -k N_ -o chainlens/locale/chainlens.pot --no-location --sort-output agent tools chainlens
    bots web reports billing`."""
    in_code, in_template = code_messages(), template_messages()
    assert in_code - in_template == set(), "messages missing from chainlens.pot"
    assert in_template - in_code == set(), "chainlens.pot has messages the code no longer uses"
    assert len(in_code) > 100


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_message_is_translated(language: str) -> None:
    text = resources.files("chainlens").joinpath(po_path(language)).read_bytes()
    catalog = read_po(io.BytesIO(text), locale=language)
    translated = {m.id: m for m in catalog if m.id}
    for msgid in template_messages():
        message = translated.get(msgid)
        assert message is not None, f"{language}: no entry for {msgid!r}"
        assert isinstance(message.string, str) and message.string.strip(), (
            f"{language}: empty {msgid!r}"
        )
        assert not message.fuzzy, f"{language}: fuzzy {msgid!r}"
        assert sorted(PLACEHOLDER.findall(message.string)) == sorted(PLACEHOLDER.findall(msgid)), (
            f"{language}: placeholders differ in {msgid!r}"
        )
    assert set(translated) - template_messages() == set(), f"{language}: obsolete entries"


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_loads_and_translates(language: str) -> None:
    loc = localizer(language)
    assert isinstance(loc, Localizer) and loc.language == language
    expected = {"en": "Key risks", "vi": "Rủi ro chính"}[language]
    assert loc._("**Key risks**") == f"**{expected}**"


def test_unknown_language_is_english_and_not_advice_is_marked() -> None:
    assert localizer("fr").language == "en" and localizer(None).language == "en"
    assert localizer("vi-VN").language == "vi"
    assert NOT_ADVICE_MESSAGE == NOT_ADVICE  # the catalogue's copy of agent/assess.py's line
