"""The widget's conversation: its recent turns after a reload, and "new chat"."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from redis.exceptions import RedisError

from chainlens.deps import Deps
from chainlens.i18n import N_
from web.auth import Caller, current_caller
from web.errors import ApiError, ErrorResponse
from web.history import (
    StoredTurn,
    current_conversation,
    recent_turns,
    start_conversation,
)
from web.i18n import request_language

router = APIRouter(tags=["chat"])
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "history store unavailable"}
}


class HistoryOut(BaseModel):
    conversation_id: str
    turns: list[StoredTurn]
    signed_in_as: str | None = None  # the email of a signed-in caller
    # The caller's language (saved choice, else the cl_lang cookie, else Accept-Language):
    # the widget loads its strings in it.
    language: str = "en"


class ConversationOut(BaseModel):
    conversation_id: str


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


def _unavailable() -> ApiError:
    return ApiError(
        503,
        "history_unavailable",
        N_("Your earlier messages cannot be loaded right now; new questions still work."),
    )


@router.get("/api/chat/history", response_model=HistoryOut, responses=_UNAVAILABLE)
async def chat_history(
    request: Request,
    caller: Caller = Depends(current_caller),
    conversation_id: str | None = Query(default=None, max_length=100, pattern=r"^[A-Za-z0-9:_-]+$"),
) -> HistoryOut:
    """The recent turns of the caller's current conversation (or of the one named)."""
    deps = _deps(request)
    try:
        conversation = conversation_id or await current_conversation(deps, caller.identity)
        turns = await recent_turns(deps, identity=caller.identity, conversation_id=conversation)
    except RedisError:
        raise _unavailable() from None
    email = caller.identity.partition(":")[2] if caller.via == "session" else None
    return HistoryOut(
        conversation_id=conversation,
        turns=turns,
        signed_in_as=email,
        language=request_language(request),
    )


@router.post("/api/chat/conversations", response_model=ConversationOut, responses=_UNAVAILABLE)
async def new_conversation(
    request: Request, caller: Caller = Depends(current_caller)
) -> ConversationOut:
    """Start a new conversation ("new chat"): earlier turns no longer show or steer answers."""
    try:
        return ConversationOut(
            conversation_id=await start_conversation(_deps(request), caller.identity)
        )
    except RedisError:
        raise _unavailable() from None
