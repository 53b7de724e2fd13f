"""The output guard: every line the model writes is checked before anyone sees it.

A figure not found in the tool data is withheld, a link not among the sources is dropped,
a line recommending a different stance than the rules chose is removed, and a risk score
other than the computed one is corrected. Works line by line so it can sit on a stream.

Text a model copies from an injected headline is removed sentence by sentence: return
multiples and promises ("1000x upside guaranteed"), imperative trading calls ("You should
buy now", whatever the stance), accusations the data does not support ("confirmed rug pull,
team stole funds" — kept only where a tool's own findings say so, or attributed to the
publisher whose headline says it), and contact handles and addresses (t.me/…, e-mail, phone,
@handles and wallets not in the data). Links into third-party text (a headline's article)
are not clickable in the answer: the article is cited by its publisher and linked only in
the Sources list (`cited`).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping

from agent.assess import Assessment, Stance
from agent.facts import headlines_of, known_urls, risks_of
from tools.results import ToolResult

WITHHELD = "[n/a]"

_URL = re.compile(r"https?://[^\s)\]>\"']+", re.IGNORECASE)
_MD_LINK = re.compile(r"\[([^\]]*)\]\((https?://[^)\s]+)\)")
_NUMBER = re.compile(
    r"(?<![\w.])(?P<cur>[$€£]\s?)?(?P<num>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?"
    r"(?P<unit>\s?(?:%|[kKmMbBtT](?![a-zA-Z])|thousand|million|billion|trillion|mn|bn))?"
    r"(?P<after>[a-zA-Z]*)"
)
_SCALE = {
    "k": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "mn": 1e6,
    "million": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
    "t": 1e12,
    "trillion": 1e12,
}
# "24h", "7d", "90-day", "3rd": counts of time or ordinals, not data figures.
_TIME_SUFFIX = re.compile(r"^(?:h|hr|hrs|d|w|y|yr|m|mo|st|nd|rd|th|x)$", re.IGNORECASE)
_TIME_WORDS = re.compile(
    r"^\s*-?\s*(?:hours?|days?|weeks?|months?|years?|minutes?)\b", re.IGNORECASE
)
_STANCE_WORD = re.compile(r"\b(STRONG\s+BUY|STRONG\s+SELL|BUY|SELL|HOLD|AVOID|ACCUMULATE)\b")
_ADVICE = re.compile(
    r"\b(?:should|must|recommend\w*|advis\w*|urge\w*|tell\w*\s+\w+\s+to|go\s+ahead\s+and|time\s+to)"
    r"\b[^.\n]{0,40}?\b(buy|sell|accumulate|short|ape|dump|avoid)\b"
    r"|\b(buy|sell)\s+(?:it|now|this|more|immediately|today)\b",
    re.IGNORECASE,
)
_RISK_SCORE = re.compile(r"(risk\s+score[^0-9\n]{0,20})(\d{1,2})(\s*/\s*10)", re.IGNORECASE)
_STANCE_OF_VERB = {
    "buy": "BUY",
    "accumulate": "BUY",
    "ape": "BUY",
    "sell": "SELL",
    "short": "SELL",
    "dump": "SELL",
    "avoid": "AVOID",
}
# --- Vietnamese answers ---------------------------------------------------------------------
# Figures written the Vietnamese way ("1.234,5", "1,52 tỷ USD") or, in a slip, the English way:
# a figure passes when either reading of its digits is in the data.
_VI_NUMBER = re.compile(
    r"(?<![\w.,])(?P<cur>[$€£]\s?)?(?P<num>\d+(?:[.,]\d+)*)"
    r"(?P<unit>\s?(?:%|nghìn\s+tỷ|nghìn\s+tỉ|tỷ|tỉ|triệu|nghìn|ngàn|[kKmMbBtT](?![^\W\d_])))?"
    r"(?P<after>[^\W\d_]*)"
)
_VI_SCALE = {
    "nghìn tỷ": 1e12,
    "nghìn tỉ": 1e12,
    "tỷ": 1e9,
    "tỉ": 1e9,
    "triệu": 1e6,
    "nghìn": 1e3,
    "ngàn": 1e3,
}
_VI_GROUPED = re.compile(r"^\d{1,3}(?:\.\d{3})+(?:,\d+)?$|^\d+(?:,\d+)?$")
_EN_GROUPED = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$|^\d+(?:\.\d+)?$")
_VI_TIME_WORDS = re.compile(r"^\s*(?:giờ|ngày|tuần|tháng|năm|phút)\b", re.IGNORECASE)
_STANCE_WORD_VI = re.compile(r"(?<!\w)(MUA|GIỮ|BÁN|TRÁNH)(?!\w)")
_STANCE_OF_VI = {"MUA": "BUY", "GIỮ": "HOLD", "BÁN": "SELL", "TRÁNH": "AVOID"}
_ADVICE_VI = re.compile(r"(?<!không\s)(?<!chưa\s)\bnên\s+(mua|gom|bán|xả|tránh)\b", re.IGNORECASE)
_RISK_SCORE_VI = re.compile(r"(điểm\s+rủi\s+ro[^0-9\n]{0,20})(\d{1,2})(\s*/\s*10)", re.IGNORECASE)
_ADVICE_VERB_VI = {"mua": "BUY", "gom": "BUY", "bán": "SELL", "xả": "SELL", "tránh": "AVOID"}


def vi_readings(num: str, unit: str) -> list[tuple[float, float, bool]]:
    """(value, rounding slack, has decimals) for each way the digits can be read: Vietnamese
    (1.234,5) and English (1,234.5). '1,52 tỷ' -> [(1.52e9, 5e6, True)]."""
    unit = " ".join(unit.split())
    scale = _VI_SCALE.get(unit, _SCALE.get(unit.lower(), 1.0))
    out = []
    for grouped, thousands, decimal in ((_VI_GROUPED, ".", ","), (_EN_GROUPED, ",", ".")):
        if not grouped.match(num):
            continue
        digits, _, frac = num.replace(thousands, "").partition(decimal)
        value = float(f"{digits}.{frac}" if frac else digits) * scale
        step = 10.0 ** -len(frac) if frac else 1.0
        out.append((value, step * scale / 2, bool(frac)))
    return out


def _vi_numbers_in(text: str) -> set[float]:
    found: set[float] = set()
    for match in _VI_NUMBER.finditer(_URL.sub(" ", text)):
        found |= {value for value, _, _ in vi_readings(match["num"], match["unit"] or "")}
    return found


_SOURCES_HEADING = re.compile(r"^\s*(?:#+\s*|\*\*)?\s*sources?\b", re.IGNORECASE)
_HEADING = re.compile(r"^\s*(?:#+\s|\*\*[^*]+\*\*\s*$)")

# --- what injected text tends to make a model write ---------------------------------------------
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
_LEAD = re.compile(r"^\s*(?:[-*•]\s+|\d+[.)]\s+)?(?:\*\*[^*]+\*\*\s*)?")  # bullet, heading
_PROMISE = re.compile(
    r"\bguarantee(?:d|s)?\b|\brisk[\s-]?free\b|\b(?:can(?:no|')t|cannot|won't)\s+lose\b"
    r"|\bsure\s+(?:thing|bet|win)\b|\b(?:easy|free)\s+money\b|\bget\s+rich\b"
    r"|\b100\s?%\s+(?:safe|sure|certain|profit\w*)\b|\bto\s+the\s+moon\b|\bmoon(?:s|ing|shot)\b"
    r"|\bwill\s+(?:\d+x|double|triple|quadruple|moon|explode|skyrocket|pump|multiply)\b"
    r"|\b\d+[\s-]?baggers?\b|\b(?:ten|hundred|thousand)[\s-]?fold\b",
    re.IGNORECASE,
)
_MULTIPLE = re.compile(r"\b\d+(?:\.\d+)?\s?x\b", re.IGNORECASE)
_RETURN_WORDS = re.compile(
    r"\b(?:upside|gains?|returns?|profits?|potential|pump\w*|rall\w+|from\s+here|targets?)\b",
    re.IGNORECASE,
)
_MULTIPLE_VERB = re.compile(  # "could 10x", "set to 100x"
    r"\b(?:could|will|can|might|may|gonna|(?:set|poised|going|ready|about)\s+to)\s+(?:easily\s+)?"
    r"\d+(?:\.\d+)?\s?x\b",
    re.IGNORECASE,
)
_CALL = re.compile(
    r"^(?:(?:you|everyone|investors|holders|traders)\s+)?(?:should\s+|must\s+|need\s+to\s+|"
    r"have\s+to\s+|better\s+)?(?:buy|sell|short|ape|load\s+up|accumulate|dump|go\s+all[\s-]in"
    r"|get\s+in|grab|stack|hodl|bid)(?![\w-])"
    r"|\b(?:act|buy|sell|get\s+in|join)\s+(?:now|today|immediately|fast|early)\b"
    r"|\bdo(?:n't|\s+not)\s+miss\b|\bbefore\s+it'?s\s+too\s+late\b|\blast\s+chance\b"
    r"|\bnot\s+too\s+late\s+to\b",
    re.IGNORECASE,
)
_ACCUSATIONS = {
    key: re.compile(pattern, re.IGNORECASE)
    for key, pattern in {
        "rug pull": r"\brug[\s-]?pull\w*|\brugg(?:ed|ing)\b",
        "scam": r"\bscam\w*",
        "fraud": r"\bfraud\w*",
        "ponzi": r"\bponzi\b",
        "theft": r"\bst(?:ole|olen|eal\w*)\b|\btheft\b|\bthie(?:f|ves)\b|\bembezzl\w*",
        "hack": r"\bhack(?:ed|er|ers|s)?\b",
        "exploit": r"\bexploit(?:ed|s)?\b",
        "drain": r"\bdrain(?:ed|ing)?\b",
        "honeypot": r"\bhoney\s?pot\b",
        "dump": r"\bpump[\s-]and[\s-]dump\b|\binsiders?\s+dump\w*",
        "laundering": r"\blaunder\w*",
        "criminal": r"\bcriminals?\b|\bcrooks?\b|\bcon\s+artists?\b",
    }.items()
}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_MESSENGER = re.compile(
    r"(?:https?://)?(?:www\.)?(?:t\.me|telegram\.(?:me|dog)|discord\.gg|discord(?:app)?\.com/invite"
    r"|wa\.me|chat\.whatsapp\.com|signal\.me|linktr\.ee)/[\w+/-]+",
    re.IGNORECASE,
)
_HANDLE = re.compile(r"(?<![\w@/.])@([A-Za-z0-9_]{2,32})\b")
_PHONE = re.compile(r"(?<![\w.])\+\d{1,3}(?:[ ()-]{0,2}\d){8,12}(?![\d.%])")
_WALLET = re.compile(r"\b0x[0-9a-fA-F]{40}\b")
_EMPTY_PARENS = re.compile(r"\s*\(\s*\)|\s*\[\s*\]")


def numbers_in(text: str) -> set[float]:
    """Every figure written in `text`, as values (units applied; signs dropped)."""
    found: set[float] = set()
    for match in _NUMBER.finditer(_URL.sub(" ", text)):
        value, _ = _value(match)
        found.add(value)
    return found


def _value(match: re.Match[str]) -> tuple[float, float]:
    """The figure's value and half the step of its last written digit (its rounding slack)."""
    digits = match["num"].replace(",", "")
    frac = match["frac"] or ""
    unit = (match["unit"] or "").strip().lower()
    scale = _SCALE.get(unit, 1.0)
    value = float(digits + frac) * scale
    step = 10.0 ** -(len(frac) - 1) if frac else 1.0
    return value, step * scale / 2


def allowed_values(
    values: Iterable[float | int | None], texts: Iterable[str] = (), language: str = "en"
) -> list[float]:
    """The figures the answer may contain: data values (and 0..1 shares as percentages)."""
    out: set[float] = set()
    for v in values:
        if v is None or isinstance(v, bool) or not math.isfinite(float(v)):
            continue
        out.add(abs(float(v)))
        if 0 < abs(v) <= 1:
            out.add(abs(float(v)) * 100)  # a share 0.42 may be written 42%
    for text in texts:
        out |= numbers_in(text)
        if language == "vi":
            out |= _vi_numbers_in(text)
    return sorted(out)


def _bare(url: str) -> str:
    return re.sub(r"^https?://(?:www\.)?", "", url.strip().rstrip("/.,;")).lower()


def guard_for(
    results: Mapping[str, ToolResult],
    verdict: Assessment,
    *,
    allowed: Iterable[float] | None,
    language: str = "en",
) -> AnswerGuard:
    """The guard of an answer about `results`: their links, the tools' findings (not the
    headlines' claims) and the headlines the data quotes."""
    findings = [risk for tool, r in results.items() if tool != "sentiment" for risk in risks_of(r)]
    return AnswerGuard(
        allowed=allowed,
        urls=known_urls(results),
        stance=verdict.stance,
        risk_score=verdict.risk_score,
        findings=[*findings, *verdict.reasons],
        headlines=list(headlines_of(results)),
        language=language,
    )


class AnswerGuard:
    """Check model output line by line against the data it was given."""

    def __init__(
        self,
        *,
        allowed: Iterable[float] | None,
        urls: Iterable[str],
        stance: Stance,
        risk_score: int | None,
        findings: Iterable[str] = (),
        headlines: Iterable[tuple[str, str, str]] = (),
        language: str = "en",
    ) -> None:
        """`findings`: the tools' own conclusions (risk flags, verdict reasons), which may
        carry an accusation; `headlines`: third-party (title, publisher, url) the data quotes;
        `language`: "vi" also reads Vietnamese figures and stance words."""
        # None: the text is written from the data itself, only stance and links need checking.
        self.allowed = sorted(set(allowed)) if allowed is not None else None
        self.urls = {u.rstrip("/") for u in urls}
        self.stance = stance
        self.risk_score = risk_score
        self.findings = " ".join(findings)
        self.headlines = list(headlines)
        self.articles = {url.rstrip("/"): publisher for _, publisher, url in self.headlines if url}
        self.known = {_bare(u) for u in self.urls} | {_bare(u) for u in self.articles}
        self.known_text = (self.findings + " " + " ".join(self.known)).lower()
        self.in_sources = False
        self.withheld = 0
        self.dropped_lines = 0
        self.dropped_sentences: list[tuple[str, str]] = []  # (reason, sentence), for logs and tests
        self.cited: dict[str, str] = {}  # third-party article url -> its publisher
        self._line = ""
        self.language = language  # "vi": Vietnamese figures and stance words are read too

    def check_line(self, line: str) -> str | None:
        """The line as it may be shown, or None to drop it."""
        if _SOURCES_HEADING.match(line):
            self.in_sources = True  # we render the sources footer ourselves, from the data
            return None
        if self.in_sources:
            if not _HEADING.match(line):
                return None
            self.in_sources = False
        if self._conflicting_stance(line):
            self.dropped_lines += 1
            return None
        self._line = line
        kept = self._sentences(line)
        if kept is None:
            self.dropped_lines += 1
            return None
        line = _MD_LINK.sub(self._link, kept)
        line = _URL.sub(self._bare_url, line)
        line = _EMPTY_PARENS.sub("", line)
        line = _RISK_SCORE.sub(self._risk, line)
        if self.language == "vi":
            line = _RISK_SCORE_VI.sub(self._risk, line)
        return self._figures(line) if self.allowed is not None else line

    def _sentences(self, line: str) -> str | None:
        """The line without its injected sentences; None when nothing of substance is left."""
        parts = _SENTENCE.split(line)
        kept: list[str] = []
        dropped = 0
        for i, part in enumerate(parts):
            lead = _LEAD.match(part)
            prefix = lead.group(0) if lead else ""
            reason = self._injected(part[len(prefix) :], with_lead=part)
            if reason is None:
                kept.append(part)
                continue
            self.dropped_sentences.append((reason, part))
            dropped += 1
            if i == 0 and prefix.strip():
                kept.append(prefix.rstrip())  # keep the bullet or the section heading
        if not dropped:
            return line
        text = " ".join(kept)
        return text if _BULLET.sub("", text).strip() else None

    def _injected(self, sentence: str, *, with_lead: str) -> str | None:
        """Why this sentence must go (None: it may stay)."""
        if _PROMISE.search(sentence):
            return "promise"
        if _MULTIPLE_VERB.search(sentence) or (
            _MULTIPLE.search(sentence) and _RETURN_WORDS.search(sentence)
        ):
            return "return multiple"
        if _CALL.search(sentence.lstrip(" *_-•>—–:")) or _ADVICE.search(sentence):
            return "trading call"
        if self._contact(with_lead):
            return "contact"
        for key, pattern in _ACCUSATIONS.items():
            if pattern.search(sentence) and not self._supported(pattern):
                return f"accusation ({key})"
        return None

    def _contact(self, text: str) -> bool:
        if _EMAIL.search(text) or _PHONE.search(text):
            return True
        if any(_bare(m.group(0)) not in self.known for m in _MESSENGER.finditer(text)):
            return True
        if any(m.group(0).lower() not in self.known_text for m in _WALLET.finditer(text)):
            return True
        return any(
            not re.search(rf"(?:@|/){re.escape(m.group(1).lower())}\b", self.known_text)
            for m in _HANDLE.finditer(text)
        )

    def _supported(self, pattern: re.Pattern[str]) -> bool:
        """An accusation stays when a tool found it, or when the line attributes it to (or
        quotes) a headline that makes it."""
        if pattern.search(self.findings):
            return True
        lowered = self._line.lower()
        for title, publisher, url in self.headlines:
            if not pattern.search(title):
                continue
            names = {publisher.lower(), publisher.lower().removesuffix(" rss")}
            if (
                title.lower() in lowered
                or any(n and n in lowered for n in names)
                or (url and url.lower() in lowered)
            ):
                return True
        return False

    def _conflicting_stance(self, line: str) -> bool:
        for word in _STANCE_WORD.findall(line):
            if (
                " ".join(word.split()).replace("STRONG ", "").replace("ACCUMULATE", "BUY")
                != self.stance
            ):
                return True
        for match in _ADVICE.finditer(line):
            verb = (match.group(1) or match.group(2) or "").lower()
            if _STANCE_OF_VERB.get(verb, self.stance) != self.stance:
                return True
        if self.language == "vi":
            for word in _STANCE_WORD_VI.findall(line):
                if _STANCE_OF_VI[word] != self.stance:
                    return True
            for verb in _ADVICE_VI.findall(line):
                if _ADVICE_VERB_VI[verb.lower()] != self.stance:
                    return True
        return False

    def _known_url(self, url: str) -> bool:
        return url.rstrip("/").rstrip(".,;") in self.urls

    def _article(self, url: str) -> str | None:
        """The publisher when `url` is a third-party article the data quotes."""
        url = url.rstrip("/").rstrip(".,;")
        publisher = self.articles.get(url)
        if publisher is not None:
            self.cited[url] = publisher
        return publisher

    def _link(self, match: re.Match[str]) -> str:
        text, url = match.group(1), match.group(2)
        publisher = self._article(url)
        if publisher is not None:  # cited by its publisher; the link is in the Sources list
            return f"{text} ({publisher})" if publisher.lower() not in text.lower() else text
        return match.group(0) if self._known_url(url) else text

    def _bare_url(self, match: re.Match[str]) -> str:
        url = match.group(0)
        publisher = self._article(url)
        if publisher is not None:
            return f"({publisher})"
        return url if self._known_url(url) else ""

    def _risk(self, match: re.Match[str]) -> str:
        if self.risk_score is None:
            return match.group(0)
        return f"{match.group(1)}{self.risk_score}{match.group(3)}"

    def _figures(self, line: str) -> str:
        protected = [(m.start(), m.end()) for m in _URL.finditer(line)]
        pieces: list[str] = []
        last = 0
        vi = self.language == "vi"
        for match in (_VI_NUMBER if vi else _NUMBER).finditer(line):
            ok = self._vi_figure_ok(match, line) if vi else self._figure_ok(match, line)
            if any(a <= match.start() < b for a, b in protected) or ok:
                continue
            pieces.append(line[last : match.start()])
            pieces.append(WITHHELD + match["after"])
            last = match.end()
            self.withheld += 1
        pieces.append(line[last:])
        return "".join(pieces)

    def _figure_ok(self, match: re.Match[str], line: str) -> bool:
        value, slack = _value(match)
        unit = (match["unit"] or "").strip()
        if not match["cur"] and not unit and not match["frac"]:
            if value <= 10 or value == 100:
                return True  # list numbers, "top 3", "/10" and "/100" scales
            if _TIME_SUFFIX.match(match["after"]) or _TIME_WORDS.match(line[match.end() :]):
                return True  # "24h", "7d", "90 days"
        if match["after"] and not _TIME_SUFFIX.match(match["after"]):
            return True  # part of a word or identifier ("L2", "0xabc"), not a figure
        tolerance = slack + 1e-9 * max(value, 1.0)
        allowed = self.allowed or []
        i = bisect.bisect_left(allowed, value - tolerance)
        return i < len(allowed) and allowed[i] <= value + tolerance

    def _vi_figure_ok(self, match: re.Match[str], line: str) -> bool:
        """`_figure_ok` for a Vietnamese answer: any reading of the digits may match the data."""
        unit = (match["unit"] or "").strip()
        after = match["after"]
        for value, slack, has_frac in vi_readings(match["num"], unit):
            if not match["cur"] and not unit and not has_frac:
                if value <= 10 or value == 100:
                    return True
                if (
                    _TIME_SUFFIX.match(after)
                    or _VI_TIME_WORDS.match(line[match.end() :])
                    or _TIME_WORDS.match(line[match.end() :])
                ):
                    return True
            if after and not _TIME_SUFFIX.match(after):
                return True
            tolerance = slack + 1e-9 * max(value, 1.0)
            allowed = self.allowed or []
            i = bisect.bisect_left(allowed, value - tolerance)
            if i < len(allowed) and allowed[i] <= value + tolerance:
                return True
        return False
