"""The rule-based planner: which tools a question needs, from its words alone.

The same rules are stated in the LLM planner's prompt (`agent/prompts.py`), so both routers
agree on the easy cases and the model only adds judgement on the hard ones.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tools.results import TOOL_NAMES, ToolName

Intent = Literal["research", "aspects", "bare", "none"]
PlanRouter = Literal["rules", "llm"]


class Plan(BaseModel):
    """The tools to run (in canonical order), why, and which planner chose them."""

    model_config = ConfigDict(frozen=True)

    tools: tuple[ToolName, ...] = ()
    intent: Intent = "none"
    router: PlanRouter = "rules"

    @classmethod
    def of(cls, tools: set[ToolName] | list[ToolName], *, intent: Intent,
           router: PlanRouter = "rules") -> Plan:
        """A plan whose tools are deduplicated and in TOOL_NAMES order."""
        chosen = set(tools)
        return cls(tools=tuple(t for t in TOOL_NAMES if t in chosen), intent=intent, router=router)


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w$])(?:" + "|".join(patterns) + r")(?!\w)", re.IGNORECASE)


# Decision-style requests always get the full picture, whatever aspect they mention.
FULL_RESEARCH = _words(
    r"should\s+i\s+(?:buy|invest|ape|get|sell|hold|add)\w*", r"(?:a\s+)?good\s+investment",
    r"worth\s+(?:buying|investing|it|a\s+buy)", r"dyor", r"full\s+(?:report|analysis|breakdown)",
    r"deep[\s-]?dive", r"due\s+diligence", r"complete\s+(?:analysis|report|picture)",
    r"invest(?:ing)?\s+in", r"buy\s+or\s+sell",
)
# Generic research words: all four tools unless the question names specific aspects.
RESEARCH = _words(
    r"research\w*", r"analy[sz](?:e|es|is|ing|ed)", r"overview", r"tell\s+me\s+(?:about|more)",
    r"report\s+on", r"review", r"breakdown", r"what\s+do\s+you\s+think", r"thoughts\s+on",
    r"opinion\s+on", r"explain", r"summar(?:y|ise|ize)", r"look\s+into", r"check\s+out",
    r"what\s+is", r"what's", r"whats",
)
ASPECTS: dict[ToolName, re.Pattern[str]] = {
    "onchain": _words(
        r"price\w*", r"market\s*caps?", r"mcap", r"m\.?cap", r"volumes?", r"tvl", r"liquidity",
        r"charts?", r"holders?", r"holder\s+count", r"24\s*h(?:rs?|ours?)?(?:\s+change)?",
        r"trading\s+at", r"trades?\s+at", r"how\s+much\s+is", r"cost", r"ath", r"all[\s-]time\s+high",
        r"pump\w*", r"dump\w*", r"performance", r"performing", r"rank(?:ed|ing)?", r"valuation",
        r"on[\s-]?chain", r"whales?", r"up\s+or\s+down", r"(?:up|down)\s+today", r"market\s+data",
        r"total\s+value\s+locked", r"worth\s+now",
    ),
    "sentiment": _words(
        r"sentiment", r"mood", r"buzz(?:ing|y)?", r"hyped?", r"hypes", r"fud", r"bullish", r"bearish",
        r"what\s+(?:are\s+)?(?:people|folks|others|the\s+crowd|everyone|ct)\s+(?:say|saying|think|thinking)",
        r"(?:people|crowd|everyone|community)\s+(?:say|saying|thinks?|feel\w*)",
        r"saying", r"twitter", r"tweets?", r"x\.com", r"reddit", r"fear\s*(?:and|&)\s*greed",
        r"news", r"headlines?", r"vibes?", r"social", r"narrative", r"community", r"trending",
        r"popular", r"crowd",
    ),
    "tokenomics": _words(
        r"tokenomics?", r"supply", r"circulating", r"max\s+supply", r"inflation\w*", r"inflationary",
        r"unlocks?", r"unlocking", r"vesting", r"vests?", r"emissions?", r"burn\w*", r"fdv",
        r"fully\s+diluted", r"distribution", r"dilution", r"allocation\w*", r"token\s+economics",
        r"mint(?:able|ing|ed|s)?", r"honeypot", r"contract\s+risks?", r"cliff", r"token\s+release\w*",
        r"concentrat\w*",
    ),
    "team": _words(
        r"team", r"teams", r"founders?", r"founded\s+by", r"devs?", r"developers?", r"github",
        r"development(?:\s+activity)?", r"dev\s+activity", r"commits?", r"partnerships?",
        r"partners?", r"audit\w*", r"backers?", r"backed\s+by", r"investors?", r"vcs?",
        r"legit\w*", r"credible", r"credibility", r"doxx?ed", r"anon(?:ymous)?", r"shipping",
        r"building", r"roadmap", r"who\s+(?:is|are)\s+behind", r"who\s+(?:made|built|runs)",
        r"trust(?:worthy)?", r"reputable",
    ),
}
# "Is it a scam / rug?" is a legitimacy question about both the people and the contract.
SCAM = _words(r"scam\w*", r"rug(?:s|ged|ging)?", r"rug\s*pull\w*", r"ponzi")


def aspects_in(text: str) -> set[ToolName]:
    """The tools whose aspect words appear in `text`."""
    found: set[ToolName] = {tool for tool, pattern in ASPECTS.items() if pattern.search(text)}
    if SCAM.search(text):
        found |= {"team", "tokenomics"}
    return found


def plan_by_rules(text: str, *, has_project: bool) -> Plan:
    """The rule-based plan for `text`; no project means no tools (a short helpful reply)."""
    if not has_project:
        return Plan(intent="none")
    if FULL_RESEARCH.search(text):
        return Plan.of(list(TOOL_NAMES), intent="research")
    aspects = aspects_in(text)
    if aspects:
        return Plan.of(aspects, intent="aspects")
    if RESEARCH.search(text) and not _is_question_about_state(text):
        return Plan.of(list(TOOL_NAMES), intent="research")
    return Plan.of(["onchain", "sentiment"], intent="bare")


# "What's $SOL at?" / "how is X doing" asks for the current state, not a report.
_STATE = _words(r"doing", r"going", r"looking", r"at\s*\??$", r"today", r"now", r"up\b", r"down\b")


def _is_question_about_state(text: str) -> bool:
    return bool(_STATE.search(text.strip()))


REFERS_BACK = _words(
    r"it", r"its", r"it's", r"they", r"their", r"them", r"this\s+(?:one|project|token|coin)",
    r"that\s+(?:one|project|token|coin)", r"the\s+(?:project|token|coin|protocol)", r"same",
    r"what\s+about", r"how\s+about", r"and\s+(?:the|its)",
)


def refers_back(text: str) -> bool:
    """Whether a question without a project name is about the conversation's project."""
    return bool(REFERS_BACK.search(text) or aspects_in(text) or FULL_RESEARCH.search(text))
