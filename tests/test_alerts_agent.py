"""Plain phrasings set alerts through the chat service (agent/rules.py + chainlens/chat.py)."""

from __future__ import annotations

import pytest

from agent.rules import alert_request
from billing.accounts import account_for_identity
from chainlens.chat import ChatTurn, chat
from chainlens.deps import Deps
from reports.watch import alerts_of, parse_alert


@pytest.mark.parametrize(
    ("text", "query", "kind", "level"),
    [
        ("tell me if ETH drops below 3000", "ETH", "below", 3000.0),
        ("alert me when BTC goes above 70k", "BTC", "above", 70000.0),
        ("Let me know when $SOL is over $250.", "$SOL", "above", 250.0),
        ("notify me if solana moves 10%", "solana", "move", 10.0),
        ("set an alert for pepe risk", "pepe", "risk", None),
    ],
)
def test_plain_phrasings_are_alert_requests(
    text: str, query: str, kind: str, level: float | None
) -> None:
    rest = alert_request(text)
    assert rest is not None
    got_query, spec = parse_alert(rest)
    assert (got_query, spec.kind, spec.level) == (query, kind, level)


@pytest.mark.parametrize(
    "text",
    [
        "tell me about ETH",
        "what is BTC above its ATH?",
        "Research Uniswap",
        "let me know the team of SOL",
    ],
)
def test_questions_are_not_alert_requests(text: str) -> None:
    assert alert_request(text) is None


async def test_a_telegram_group_alert_goes_to_that_group_and_is_not_charged(deps: Deps) -> None:
    turn = ChatTurn(
        identity="telegram:42",
        channel="telegram",
        text="tell me if ETH drops below 3,000",
        conversation_id="telegram:-100777:42",
    )
    events = [e async for e in chat(deps, turn)]
    final = events[-1]
    assert final.type == "final"
    assert "Alert set:" in final.answer and "Ethereum (ETH): price below $3,000" in final.answer
    account = await account_for_identity(deps, "telegram:42")
    [made] = await alerts_of(deps, account.id)
    assert (made.channel, made.destination, made.kind, made.level) == (
        "telegram",
        "-100777",
        "below",
        3000.0,
    )
    # not a question: the request was given back
    used = await deps.db.fetchval(
        "SELECT count(*) FROM usage_logs WHERE user_id = $1 "
        "AND status = 'ok' AND array_length(tools, 1) > 0",
        account.id,
    )
    assert used == 0
    again = [e async for e in chat(deps, turn)]
    assert "Alert set:" in again[-1].answer  # the same alert, not a second one
    assert len(await alerts_of(deps, account.id)) == 1


async def test_web_alerts_go_to_the_signed_in_email(deps: Deps) -> None:
    turn = ChatTurn(
        identity="web:zed@example.com", channel="web", text="alert me when BTC goes above 70k"
    )
    final = [e async for e in chat(deps, turn)][-1]
    assert final.answer.endswith("the account page lists your alerts.")
    account = await account_for_identity(deps, "web:zed@example.com")
    [made] = await alerts_of(deps, account.id)
    assert (made.channel, made.destination) == ("email", "zed@example.com")


async def test_bad_alert_phrasing_gets_the_usage_hint(deps: Deps) -> None:
    turn = ChatTurn(
        identity="telegram:43",
        channel="telegram",
        text="tell me when BTC goes above zero",
        conversation_id="telegram:43",
    )
    final = [e async for e in chat(deps, turn)][-1]
    assert "/alert BTC above 70000" in final.answer
