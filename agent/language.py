"""The language of a turn: the message's own, else the user's saved choice, else the platform's
hint (Telegram `language_code`, Discord locale, browser `Accept-Language`), else English.

Vietnamese is recognised from its diacritics (ă â đ ê ô ơ ư and the tone marks) and, when
typed without accents ("phan tich uniswap", "tokenomics cua pepe the nao"), from its function
words and two-syllable words. A message with nothing to go on ("$SOL?") has no language of
its own and falls through to the saved choice and the hint.
"""

from __future__ import annotations

import re

from chainlens.i18n import DEFAULT_LANGUAGE, Language, as_language, fold

# Letters only Vietnamese uses among the languages our users write in (Latin-1 accents such
# as é or à are shared with French and Spanish and do not count).
_VI_LETTERS = frozenset("ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹĩũ")
_WORD = re.compile(r"[^\W_]+")

# Unaccented Vietnamese, folded (no diacritics, đ -> d). Two-syllable words are strong evidence;
# single syllables only count when they are not also English words ("the", "do", "to").
VI_BIGRAMS = frozenset(
    w.replace("_", " ")
    for w in """
phan_tich danh_gia nghien_cuu tim_hieu the_nao nhu_the co_nen nen_mua dau_tu doi_ngu
nguon_cung luu_hanh von_hoa khoi_luong giao_dich thanh_khoan cong_dong tin_tuc tam_ly
lam_phat mo_khoa phan_bo hop_dong rui_ro sang_lap lap_trinh trinh_vien doi_tac kiem_toan
bao_nhieu hom_nay hien_tai uy_tin lua_dao nguoi_nam nam_giu tiem_nang du_an dong_tien
cho_toi gia_tri thi_truong tang_truong giam_gia tang_gia xu_huong loi_nhuan nha_dau
phat_trien nhu_nao ra_sao tai_sao vi_sao co_phai phai_khong so_sanh doi_chieu tot_hon
manh_hon
""".split()
)
VI_WORDS = frozenset(
    """
cua khong gi nao toi minh nhieu sao duoc voi nhe oi ah vay thi nhung cac nhung hay la
gia mua ban nen co dong tien ve cho biet giup xem nay kia dang se roi chua nua
""".split()
)
# English words that are also unaccented Vietnamese syllables do not count for Vietnamese.
EN_WORDS = frozenset(
    """
the a an is are was were be been of to in on for with at by from about and or but not
what whats how why when where which who whom whose do does did can could should would will
me my i you your it its this that these those there their they them we our us price
research analyze analyse analysis tell show give compare vs versus worth buy sell hold
team tokenomics supply sentiment news market cap volume holders chart today now doing
good bad legit scam safe much many any some more most than then so if just please
""".split()
)


def message_language(text: str) -> Language | None:
    """The language the message itself is written in, or None when it gives no evidence."""
    # words of letters only: an address, "coin98" or "24h" says nothing about the language
    raw_words = [w for w in _WORD.findall(text.lower()) if w.isalpha()]
    if not raw_words:
        return None
    vi = 0
    en = 0
    folded = [fold(w) for w in raw_words]
    used = [False] * len(folded)
    for i, word in enumerate(raw_words):
        if any(c in _VI_LETTERS for c in word):
            vi += 1
            used[i] = True
    for i in range(len(folded) - 1):
        if not (used[i] or used[i + 1]) and f"{folded[i]} {folded[i + 1]}" in VI_BIGRAMS:
            vi += 2
            used[i] = used[i + 1] = True
    for i, word in enumerate(folded):
        if used[i]:
            continue
        if word in EN_WORDS:
            en += 1
        elif word in VI_WORDS:
            vi += 1
    if vi == 0 and en == 0:
        return None
    return "vi" if vi > en else "en"


def detect_language(text: str, *, saved: str | None = None, hint: str | None = None) -> Language:
    """The turn's language: the message's own, else the saved choice, else the hint, else English.

    `saved` is the user's choice (`/lang`, the account page); `hint` a platform's locale or an
    Accept-Language header ('vi-VN,vi;q=0.9,en;q=0.8')."""
    return message_language(text) or as_language(saved) or hint_language(hint) or DEFAULT_LANGUAGE


def hint_language(hint: str | None) -> Language | None:
    """The first supported language of a locale ('vi_VN') or an Accept-Language header."""
    if not hint:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(hint.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, i, tag))
    for quality, _i, tag in sorted(ranked):
        if quality < 0 and (lang := as_language(tag)):
            return lang
    return None
