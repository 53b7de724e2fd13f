"""The rule-based planner: which tools a question needs, from its words alone.

The same rules are stated in the LLM planner's prompt (`agent/prompts.py`), so both routers
agree on the easy cases and the model only adds judgement on the hard ones.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from chainlens.i18n import fold
from tools.results import TOOL_NAMES, ToolName

Intent = Literal["research", "aspects", "bare", "none", "market", "compare", "alert"]
MarketKind = Literal["overview", "trending", "movers"]
Window = Literal["24h", "7d"]
PlanRouter = Literal["rules", "llm"]


class Plan(BaseModel):
    """The tools to run (in canonical order), why, and which planner chose them."""

    model_config = ConfigDict(frozen=True)

    tools: tuple[ToolName, ...] = ()
    intent: Intent = "none"
    router: PlanRouter = "rules"
    market: MarketKind | None = None  # intent "market": which view of the whole market
    window: Window = "24h"  # movers: over 24 hours or 7 days
    project_ids: tuple[str, ...] = ()  # intent "compare": the projects compared, in order

    @classmethod
    def of(
        cls, tools: set[ToolName] | list[ToolName], *, intent: Intent, router: PlanRouter = "rules"
    ) -> Plan:
        """A plan whose tools are deduplicated and in TOOL_NAMES order."""
        chosen = set(tools)
        return cls(tools=tuple(t for t in TOOL_NAMES if t in chosen), intent=intent, router=router)


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w$])(?:" + "|".join(patterns) + r")(?!\w)", re.IGNORECASE)


# Decision-style requests always get the full picture, whatever aspect they mention.
FULL_RESEARCH = _words(
    r"should\s+i\s+(?:buy|invest|ape|get|sell|hold|add)\w*",
    r"(?:a\s+)?good\s+investment",
    r"worth\s+(?:buying|investing|it|a\s+buy)",
    r"dyor",
    r"full\s+(?:report|analysis|breakdown)",
    r"deep[\s-]?dive",
    r"due\s+diligence",
    r"complete\s+(?:analysis|report|picture)",
    r"invest(?:ing)?\s+in",
    r"buy\s+or\s+sell",
)
# Generic research words: all four tools unless the question names specific aspects.
RESEARCH = _words(
    r"research\w*",
    r"analy[sz](?:e|es|is|ing|ed)",
    r"overview",
    r"tell\s+me\s+(?:about|more)",
    r"report\s+on",
    r"review",
    r"breakdown",
    r"what\s+do\s+you\s+think",
    r"thoughts\s+on",
    r"opinion\s+on",
    r"explain",
    r"summar(?:y|ise|ize)",
    r"look\s+into",
    r"check\s+out",
    r"what\s+is",
    r"what's",
    r"whats",
)
ASPECTS: dict[ToolName, re.Pattern[str]] = {
    "onchain": _words(
        r"price\w*",
        r"market\s*caps?",
        r"mcap",
        r"m\.?cap",
        r"volumes?",
        r"tvl",
        r"liquidity",
        r"charts?",
        r"holders?",
        r"holder\s+count",
        r"24\s*h(?:rs?|ours?)?(?:\s+change)?",
        r"trading\s+at",
        r"trades?\s+at",
        r"how\s+much\s+is",
        r"cost",
        r"ath",
        r"all[\s-]time\s+high",
        r"pump\w*",
        r"dump\w*",
        r"performance",
        r"performing",
        r"rank(?:ed|ing)?",
        r"valuation",
        r"on[\s-]?chain",
        r"whales?",
        r"up\s+or\s+down",
        r"(?:up|down)\s+today",
        r"market\s+data",
        r"total\s+value\s+locked",
        r"worth\s+now",
    ),
    "sentiment": _words(
        r"sentiment",
        r"mood",
        r"buzz(?:ing|y)?",
        r"hyped?",
        r"hypes",
        r"fud",
        r"bullish",
        r"bearish",
        r"what\s+(?:are\s+)?(?:people|folks|others|the\s+crowd|everyone|ct)\s+(?:say|saying|think|thinking)",
        r"(?:people|crowd|everyone|community)\s+(?:say|saying|thinks?|feel\w*)",
        r"saying",
        r"twitter",
        r"tweets?",
        r"x\.com",
        r"reddit",
        r"fear\s*(?:and|&)\s*greed",
        r"news",
        r"headlines?",
        r"vibes?",
        r"social",
        r"narrative",
        r"community",
        r"trending",
        r"popular",
        r"crowd",
    ),
    "tokenomics": _words(
        r"tokenomics?",
        r"supply",
        r"circulating",
        r"max\s+supply",
        r"inflation\w*",
        r"inflationary",
        r"unlocks?",
        r"unlocking",
        r"vesting",
        r"vests?",
        r"emissions?",
        r"burn\w*",
        r"fdv",
        r"fully\s+diluted",
        r"distribution",
        r"dilution",
        r"allocation\w*",
        r"token\s+economics",
        r"mint(?:able|ing|ed|s)?",
        r"honeypot",
        r"contract\s+risks?",
        r"cliff",
        r"token\s+release\w*",
        r"concentrat\w*",
    ),
    "team": _words(
        r"team",
        r"teams",
        r"founders?",
        r"founded\s+by",
        r"devs?",
        r"developers?",
        r"github",
        r"development(?:\s+activity)?",
        r"dev\s+activity",
        r"commits?",
        r"partnerships?",
        r"partners?",
        r"audit\w*",
        r"backers?",
        r"backed\s+by",
        r"investors?",
        r"vcs?",
        r"legit\w*",
        r"credible",
        r"credibility",
        r"doxx?ed",
        r"anon(?:ymous)?",
        r"shipping",
        r"building",
        r"roadmap",
        r"who\s+(?:is|are)\s+behind",
        r"who\s+(?:made|built|runs)",
        r"trust(?:worthy)?",
        r"reputable",
    ),
}
# "Is it a scam / rug?" is a legitimacy question about both the people and the contract.
SCAM = _words(r"scam\w*", r"rug(?:s|ged|ging)?", r"rug\s*pull\w*", r"ponzi")

# --- Vietnamese -------------------------------------------------------------------------------
# Matched against the folded text (lower case, no diacritics: `agent.language.fold`), so
# "Phân tích", "phan tich" and "PHÂN TÍCH" are the same words. Syllables are separate words.
_S = r"\s+"
VI_FULL_RESEARCH = _words(
    rf"(?:co{_S})?nen{_S}(?:mua|dau{_S}tu|xuong{_S}tien|vao|ban|giu|om|gom)",  # có nên mua…
    rf"dang{_S}(?:mua|dau{_S}tu)",
    rf"dau{_S}tu{_S}(?:vao|duoc)",
    rf"mua{_S}(?:duoc|hay{_S}ban)",
    rf"co{_S}dang{_S}(?:mua|dau{_S}tu)",
    rf"phan{_S}tich{_S}(?:toan{_S}dien|day{_S}du|chuyen{_S}sau|chi{_S}tiet)",
    rf"bao{_S}cao{_S}(?:day{_S}du|toan{_S}dien|chi{_S}tiet)",
)
VI_RESEARCH = _words(
    rf"phan{_S}tich",
    rf"danh{_S}gia",
    rf"nghien{_S}cuu",
    rf"tim{_S}hieu",
    rf"tong{_S}quan",
    r"review",
    rf"nhan{_S}dinh",
    rf"nhan{_S}xet",
    rf"gioi{_S}thieu",
    rf"ke{_S}ve",
    rf"noi{_S}ve",
    rf"la{_S}gi",
    rf"la{_S}du{_S}an{_S}gi",
    rf"bao{_S}cao{_S}ve",
    rf"xem{_S}xet",
    rf"co{_S}tot{_S}khong",
    rf"co{_S}tiem{_S}nang",
)
VI_ASPECTS: dict[ToolName, re.Pattern[str]] = {
    "onchain": _words(
        r"(?<!danh\s)(?<!tham\s)gia",  # giá (price), not đánh giá (evaluate) or tham gia (join)
        rf"von{_S}hoa",
        rf"khoi{_S}luong(?:{_S}giao{_S}dich)?",
        rf"thanh{_S}khoan",
        rf"nguoi{_S}nam{_S}giu",
        rf"nam{_S}giu",
        rf"so{_S}(?:nguoi|vi){_S}(?:nam|giu)",
        r"holders?",
        rf"bieu{_S}do",
        rf"tang{_S}(?:gia|manh|bao{_S}nhieu)",
        rf"giam{_S}(?:gia|manh|bao{_S}nhieu)",
        rf"dinh{_S}(?:gia|cu|lich{_S}su)",
        rf"bao{_S}nhieu{_S}tien",
        rf"ca{_S}voi",
        rf"xep{_S}hang",
        r"tvl",
        rf"tong{_S}gia{_S}tri{_S}khoa",
        rf"du{_S}lieu{_S}thi{_S}truong",
        r"on[\s-]?chain",
    ),
    "sentiment": _words(
        rf"cong{_S}dong",
        rf"tin{_S}tuc",
        rf"tam{_S}ly",
        r"fud",
        r"hype",
        rf"tam{_S}ly{_S}thi{_S}truong",
        rf"moi{_S}nguoi{_S}(?:noi|nghi|dang{_S}noi|danh{_S}gia)",
        rf"du{_S}luan",
        rf"xu{_S}huong",
        rf"so{_S}hai{_S}(?:va|&){_S}tham{_S}lam",
        r"fear\s*(?:and|&)\s*greed",
        rf"mang{_S}xa{_S}hoi",
        r"twitter",
        r"reddit",
        rf"tieu{_S}de{_S}bao",
        rf"bao{_S}chi",
        rf"tin{_S}don",
        rf"lac{_S}quan",
        rf"bi{_S}quan",
        r"sentiment",
    ),
    "tokenomics": _words(
        rf"nguon{_S}cung",
        rf"luu{_S}hanh",
        rf"lam{_S}phat",
        rf"mo{_S}khoa",
        r"unlocks?",
        rf"phan{_S}bo",
        rf"phan{_S}phoi",
        rf"hop{_S}dong",
        rf"rui{_S}ro{_S}hop{_S}dong",
        rf"tong{_S}cung",
        rf"cung{_S}toi{_S}da",
        r"vesting",
        rf"tra{_S}dan",
        rf"dot{_S}(?:token|coin)",
        rf"pha{_S}loang",
        rf"phat{_S}hanh{_S}(?:them|token)",
        r"tokenomics?",
        r"fdv",
        rf"tap{_S}trung",
        r"honeypot",
        r"mint",
        r"supply",
    ),
    "team": _words(
        rf"doi{_S}ngu",
        rf"nha{_S}sang{_S}lap",
        rf"sang{_S}lap",
        r"founders?",
        rf"lap{_S}trinh{_S}vien",
        rf"nha{_S}phat{_S}trien",
        r"devs?",
        r"github",
        rf"doi{_S}tac",
        rf"hop{_S}tac",
        rf"kiem{_S}toan",
        r"audits?",
        rf"nha{_S}dau{_S}tu{_S}(?:hau{_S}thuan|rot{_S}von)",
        rf"quy{_S}dau{_S}tu",
        rf"hau{_S}thuan",
        rf"rot{_S}von",
        rf"uy{_S}tin",
        rf"dang{_S}tin",
        rf"minh{_S}bach",
        rf"an{_S}danh",
        rf"ai{_S}(?:dung{_S}sau|lam|phat{_S}trien)",
        rf"lo{_S}trinh",
        r"roadmap",
        rf"phat{_S}trien",
        r"team",
        rf"tin{_S}cay",
    ),
}
VI_SCAM = _words(
    rf"lua{_S}dao",
    r"scam",
    rf"rug(?:{_S}pull)?",
    rf"rut{_S}tham",
    r"ponzi",
    rf"da{_S}cap",
    rf"xa{_S}tien",
)
VI_STATE = _words(rf"hom{_S}nay", rf"bay{_S}gio", rf"hien{_S}tai", rf"hien{_S}gio", rf"luc{_S}nay")


def aspects_in(text: str) -> set[ToolName]:
    """The tools whose aspect words appear in `text` (English or Vietnamese)."""
    found: set[ToolName] = {tool for tool, pattern in ASPECTS.items() if pattern.search(text)}
    folded = fold(text)
    found |= {tool for tool, pattern in VI_ASPECTS.items() if pattern.search(folded)}
    if SCAM.search(text) or VI_SCAM.search(folded):
        found |= {"team", "tokenomics"}
    return found


def asks_full_research(text: str) -> bool:
    """A decision-style request ("should I buy", "có nên mua", "full report")."""
    return bool(FULL_RESEARCH.search(text) or VI_FULL_RESEARCH.search(fold(text)))


def asks_research(text: str) -> bool:
    """A generic research word ("research", "phân tích", "đánh giá", "tìm hiểu")."""
    return bool(RESEARCH.search(text) or VI_RESEARCH.search(fold(text)))


def plan_by_rules(text: str, *, has_project: bool) -> Plan:
    """The rule-based plan for `text`; no project means the market (when asked about) or no
    tools (a short helpful reply)."""
    if not has_project:
        kind = market_intent(text)
        if kind is not None:
            return Plan(intent="market", market=kind, window=movers_window(text))
        return Plan(intent="none")
    if asks_full_research(text):
        return Plan.of(list(TOOL_NAMES), intent="research")
    aspects = aspects_in(text)
    if aspects:
        return Plan.of(aspects, intent="aspects")
    if asks_research(text) and not _is_question_about_state(text):
        return Plan.of(list(TOOL_NAMES), intent="research")
    return Plan.of(["onchain", "sentiment"], intent="bare")


# "What's $SOL at?" / "how is X doing" asks for the current state, not a report.
_STATE = _words(r"doing", r"going", r"looking", r"at\s*\??$", r"today", r"now", r"up\b", r"down\b")


def _is_question_about_state(text: str) -> bool:
    return bool(_STATE.search(text.strip()) or VI_STATE.search(fold(text)))


REFERS_BACK = _words(
    r"it",
    r"its",
    r"it's",
    r"they",
    r"their",
    r"them",
    r"this\s+(?:one|project|token|coin)",
    r"that\s+(?:one|project|token|coin)",
    r"the\s+(?:project|token|coin|protocol)",
    r"same",
    r"what\s+about",
    r"how\s+about",
    r"and\s+(?:the|its)",
)
# "còn đội ngũ thì sao?", "dự án này", "đồng này": Vietnamese ways of pointing back.
VI_REFERS_BACK = _words(
    rf"(?:du{_S}an|dong|token|coin|con{_S}nay){_S}(?:nay|do|kia)",
    rf"con{_S}(?:ve|cac)",
    rf"the{_S}con",
    rf"con{_S}.{{0,40}}?thi{_S}sao",
    rf"cua{_S}no",
    rf"no{_S}(?:co|the|dang|thi)",
)


def refers_back(text: str) -> bool:
    """Whether a question without a project name is about the conversation's project."""
    return bool(
        REFERS_BACK.search(text)
        or VI_REFERS_BACK.search(fold(text))
        or aspects_in(text)
        or asks_full_research(text)
    )


# --- the market as a whole (no project named) ------------------------------------------------
_NOT_CAP = r"(?!\s*caps?\b)"
MARKET_MOVERS = _words(
    r"(?:top|biggest|best|worst|largest)\s+(?:\d+\s+)?(?:gainers?|losers?|movers?|performers?)",
    r"gainers?",
    r"losers?",
    r"movers?",
    r"what(?:'s|\s+is|\s+are)\s+(?:pumping|dumping|mooning)",
    r"which\s+(?:coins?|tokens?|cryptos?)\s+(?:are\s+|is\s+)?(?:up|down|pumping|dumping|mooning)",
    r"(?:pumping|dumping)\s+(?:the\s+)?most",
)
MARKET_TRENDING = _words(
    r"trending(?:\s+(?:coins?|tokens?|now|today))?",
    r"what(?:'s|\s+is)\s+hot",
    r"hot\s+(?:coins?|tokens?)",
    r"most\s+searched",
    r"popular\s+(?:coins?|tokens?)(?:\s+(?:now|today))?",
)
MARKET_OVERVIEW = _words(
    r"fear\s*(?:and|&)\s*greed(?:\s+index)?",
    r"market\s+(?:overview|update|summary|sentiment|mood)",
    rf"(?:the\s+)?(?:crypto|overall|whole|entire|total)\s+market{_NOT_CAP}",
    rf"the\s+market{_NOT_CAP}",
    r"total\s+(?:crypto\s+)?market\s+cap",
    r"(?:btc|bitcoin|eth|ether)\s+dominance",
    r"dominance",
    r"global\s+market",
    r"market\s+today",
    r"markets?\s+(?:doing|looking)",
)
VI_MARKET_MOVERS = _words(
    rf"top{_S}(?:\d+{_S})?(?:tang|giam)(?:{_S}gia)?",
    rf"(?:tang|giam)(?:{_S}gia)?{_S}(?:manh|nhieu){_S}nhat",
    rf"(?:coin|dong|token|dong{_S}coin){_S}nao{_S}(?:dang{_S})?(?:tang|giam|pump|dump)",
)
VI_MARKET_TRENDING = _words(
    rf"(?:coin|dong|token|dong{_S}coin){_S}nao{_S}(?:dang{_S})?(?:hot|noi|trend|thinh{_S}hanh)",
    rf"dang{_S}(?:hot|trend|thinh{_S}hanh)",
    rf"thinh{_S}hanh",
    rf"hot{_S}nhat",
    r"trending",
    rf"xu{_S}huong{_S}(?:hom{_S}nay|hien{_S}nay|thi{_S}truong)",
)
VI_MARKET_OVERVIEW = _words(
    rf"so{_S}hai{_S}(?:va|&){_S}tham{_S}lam",
    r"fear\s*(?:and|&)\s*greed",
    rf"thi{_S}truong(?!{_S}(?:cua|von))",
    rf"ty{_S}le{_S}thong{_S}tri",
    rf"thong{_S}tri",
    rf"von{_S}hoa{_S}(?:toan|tong|chung)",
)
WEEKLY = _words(
    r"(?:this|last|past)\s+week",
    r"weekly",
    r"7\s*-?\s*d(?:ays?)?",
    r"seven\s+days",
    r"week",
    rf"tuan(?:{_S}(?:nay|qua))?",
    rf"7{_S}ngay",
)
# Pointing back at the conversation's project with a pronoun ("is it trending?"), which a
# market question never does.
POINTS_BACK = _words(
    r"it",
    r"its",
    r"it's",
    r"they",
    r"their",
    r"them",
    r"this\s+(?:one|project|token|coin)",
    r"that\s+(?:one|project|token|coin)",
    r"the\s+(?:project|token|coin|protocol)",
)


def market_intent(text: str) -> MarketKind | None:
    """The view of the whole market a question asks for (movers, trending, overview), if any."""
    folded = fold(text)
    if MARKET_MOVERS.search(text) or VI_MARKET_MOVERS.search(folded):
        return "movers"
    if MARKET_TRENDING.search(text) or VI_MARKET_TRENDING.search(folded):
        return "trending"
    if MARKET_OVERVIEW.search(text) or VI_MARKET_OVERVIEW.search(folded):
        return "overview"
    return None


def movers_window(text: str) -> Window:
    return "7d" if WEEKLY.search(text) or WEEKLY.search(fold(text)) else "24h"


def points_back(text: str) -> bool:
    """An explicit pronoun for the conversation's project ("its", "nó", "dự án này")."""
    return bool(POINTS_BACK.search(text) or VI_REFERS_BACK.search(fold(text)))


# "tell me if ETH drops below 3000", "alert me when BTC goes above 70k", "set an alert for
# SOL move 10%": an alert to set (reports/watch.py), not a question for the tools.
_ALERT_REQUEST = re.compile(
    r"^\s*(?:please\s+)?(?:(?:can|could|will|would)\s+you\s+)?"
    r"(?:(?:tell|notify|alert|ping|warn|message|remind)\s+me|let\s+me\s+know|"
    r"set\s+(?:up\s+)?(?:an?\s+)?(?:price\s+)?alert|create\s+(?:an?\s+)?alert|"
    r"add\s+(?:an?\s+)?alert)"
    r"\s+(?:if|when|whenever|once|as\s+soon\s+as|for|on)\s+(?P<rest>.+?)\s*[.!?]*\s*$",
    re.IGNORECASE,
)
_ALERT_CONDITION = _words(r"above", r"below", r"over", r"under", r"moves?", r"risk", r"sentiment")


def alert_request(text: str) -> str | None:
    """The alert in a plain request ("ETH drops below 3000"), or None when it is not one."""
    match = _ALERT_REQUEST.match(text)
    if match is None or not _ALERT_CONDITION.search(match["rest"]):
        return None
    return match["rest"]
