"""The research agent: resolve the project, plan tools, run them in parallel, compose.

Import from here: `answer_stream` (typed events for every channel), `answer` (final only),
the event types, `Plan`, `MAX_QUESTION_CHARS` and `detect_language` (the turn's language).
"""

from agent.events import (
    AgentEvent,
    ErrorEvent,
    FinalEvent,
    PlanEvent,
    TextEvent,
    ToolFinishedEvent,
    ToolStartedEvent,
    Usage,
)
from agent.language import detect_language
from agent.rules import Plan
from agent.stream import MAX_QUESTION_CHARS, answer, answer_stream

__all__ = [
    "MAX_QUESTION_CHARS",
    "AgentEvent",
    "ErrorEvent",
    "FinalEvent",
    "Plan",
    "PlanEvent",
    "TextEvent",
    "ToolFinishedEvent",
    "ToolStartedEvent",
    "Usage",
    "answer",
    "answer_stream",
    "detect_language",
]
