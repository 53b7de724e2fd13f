"""Vietnamese questions, accented and unaccented: which tools the rules plan and which project
they resolve to (the bundled coin index, no network), plus the graph end to end."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from agent import answer
from agent.events import FinalEvent
from agent.language import detect_language
from agent.rules import plan_by_rules, refers_back
from chainlens.deps import Deps
from tests.tools_fakes import FakeSources, fast_http
from tools.index import bundled_index
from tools.resolve import resolve_offline, search_query

WithHttp = Callable[[Deps, httpx.AsyncBaseTransport], Deps]
ALL = ("onchain", "sentiment", "tokenomics", "team")
BARE = ("onchain", "sentiment")

# (question, tools in canonical order, resolved CoinGecko id)
CASES: list[tuple[str, tuple[str, ...], str]] = [
    # the issue's own examples
    ("Phân tích Uniswap", ALL, "uniswap"),
    ("Tokenomics của PEPE thế nào?", ("tokenomics",), "pepe"),
    ("Đội ngũ Chainlink có uy tín không?", ("team",), "chainlink"),
    ("Nguồn cung lưu hành của Arbitrum", ("tokenomics",), "arbitrum"),
    ("phan tich uniswap", ALL, "uniswap"),
    ("tokenomics cua pepe the nao", ("tokenomics",), "pepe"),
    ("doi ngu chainlink co uy tin khong", ("team",), "chainlink"),
    ("nguon cung luu hanh cua arbitrum", ("tokenomics",), "arbitrum"),
    # research / analysis / evaluation -> all four tools
    ("Đánh giá Solana", ALL, "solana"),
    ("danh gia solana", ALL, "solana"),
    ("Nghiên cứu dự án Aave giúp tôi", ALL, "aave"),
    ("nghien cuu du an aave giup toi", ALL, "aave"),
    ("Tìm hiểu về Polkadot", ALL, "polkadot"),
    ("tim hieu ve polkadot", ALL, "polkadot"),
    ("Cho tôi tổng quan về Cardano", ALL, "cardano"),
    ("Nhận định về Dogecoin", ALL, "dogecoin"),
    ("phân tích link", ALL, "chainlink"),
    ("Phân tích $ARB", ALL, "arbitrum"),
    # should I buy -> all four tools, whatever aspect is named
    ("Có nên mua ETH không?", ALL, "ethereum"),
    ("co nen mua eth khong", ALL, "ethereum"),
    ("Có nên đầu tư vào Solana không?", ALL, "solana"),
    ("co nen dau tu vao solana khong", ALL, "solana"),
    ("BTC có nên mua không, giá đang giảm", ALL, "bitcoin"),
    ("Nên mua PEPE không?", ALL, "pepe"),
    ("nen mua pepe khong", ALL, "pepe"),
    # price / market cap / volume / liquidity / holders -> onchain
    ("Giá BTC hôm nay", ("onchain",), "bitcoin"),
    ("gia btc hom nay la bao nhieu", ("onchain",), "bitcoin"),
    ("Giá của OP là bao nhiêu?", ("onchain",), "optimism"),
    ("Vốn hóa thị trường của NEAR", ("onchain",), "near"),
    ("von hoa cua near", ("onchain",), "near"),
    ("Khối lượng giao dịch của LINK", ("onchain",), "chainlink"),
    ("khoi luong giao dich cua link", ("onchain",), "chainlink"),
    ("Thanh khoản của UNI thế nào?", ("onchain",), "uniswap"),
    ("thanh khoan cua uni the nao", ("onchain",), "uniswap"),
    ("Có bao nhiêu người nắm giữ Shiba Inu?", ("onchain",), "shiba-inu"),
    ("so nguoi nam giu shiba inu", ("onchain",), "shiba-inu"),
    ("Số holder của PEPE", ("onchain",), "pepe"),
    ("xem giá BTC", ("onchain",), "bitcoin"),  # "xem" (see) is also a ticker, XEM
    ("cho tôi xem đội ngũ của Aave", ("team",), "aave"),
    # community / news / sentiment / FUD / hype -> sentiment
    ("Cộng đồng Solana nói gì về SOL?", ("sentiment",), "solana"),
    ("cong dong solana noi gi", ("sentiment",), "solana"),
    ("Tin tức mới nhất về Dogecoin", ("sentiment",), "dogecoin"),
    ("tin tuc moi nhat ve dogecoin", ("sentiment",), "dogecoin"),
    ("Tâm lý thị trường với XRP", ("sentiment",), "ripple"),
    ("tam ly voi xrp", ("sentiment",), "ripple"),
    ("Có FUD gì về Tether không?", ("sentiment",), "tether"),
    ("PEPE có đang hype không", ("sentiment",), "pepe"),
    # supply / inflation / unlocks / distribution / contract risk -> tokenomics
    ("Lạm phát của Celestia cao không?", ("tokenomics",), "celestia"),
    ("lam phat cua celestia", ("tokenomics",), "celestia"),
    ("Khi nào mở khóa token ARB?", ("tokenomics",), "arbitrum"),
    ("mo khoa token arb khi nao", ("tokenomics",), "arbitrum"),
    ("Phân bổ token của Aptos", ("tokenomics",), "aptos"),
    ("phan bo token cua aptos", ("tokenomics",), "aptos"),
    ("Hợp đồng của PEPE có rủi ro không?", ("tokenomics",), "pepe"),
    ("hop dong pepe co rui ro khong", ("tokenomics",), "pepe"),
    # team / founders / developers / GitHub / partners / audits -> team
    ("Nhà sáng lập của Cardano là ai?", ("team",), "cardano"),
    ("nha sang lap cardano la ai", ("team",), "cardano"),
    ("Lập trình viên của Polkadot có tích cực không?", ("team",), "polkadot"),
    ("lap trinh vien polkadot", ("team",), "polkadot"),
    ("Hoạt động GitHub của Ethereum", ("team",), "ethereum"),
    ("Đối tác của Chainlink", ("team",), "chainlink"),
    ("doi tac cua chainlink", ("team",), "chainlink"),
    ("Uniswap đã được kiểm toán chưa?", ("team",), "uniswap"),
    ("kiem toan cua curve", ("team",), "curve-dao-token"),
    ("Aave có audit không", ("team",), "aave"),
    ("dev của Solana có hoạt động không", ("team",), "solana"),
    # several aspects -> the union
    ("Giá và đội ngũ của Avalanche", ("onchain", "team"), "avalanche-2"),
    ("gia va doi ngu cua avalanche", ("onchain", "team"), "avalanche-2"),
    ("Tin tức và nguồn cung của Sui", ("sentiment", "tokenomics"), "sui"),
    # scam questions ask about the people and the contract
    ("PEPE có phải lừa đảo không?", ("tokenomics", "team"), "pepe"),
    ("pepe co lua dao khong", ("tokenomics", "team"), "pepe"),
    # a bare mention ("how is X?") -> market and sentiment
    ("Uniswap thế nào?", BARE, "uniswap"),
    ("solana ra sao", BARE, "solana"),
]


@pytest.mark.parametrize(("question", "tools", "coin"), CASES, ids=[c[0] for c in CASES])
def test_vietnamese_question_plans_tools_and_resolves_project(
    question: str, tools: tuple[str, ...], coin: str
) -> None:
    resolution = resolve_offline(question, bundled_index())
    assert resolution.project is not None, question
    assert resolution.project.id == coin, (question, resolution.matched)
    plan = plan_by_rules(question, has_project=True)
    assert plan.tools == tools, question
    assert detect_language(question) == "vi", question


def test_suite_is_large_and_covers_both_spellings() -> None:
    accented = [q for q, _, _ in CASES if not q.isascii()]
    plain = [q for q, _, _ in CASES if q.isascii()]
    assert len(CASES) >= 60 and len(accented) >= 30 and len(plain) >= 25


@pytest.mark.parametrize(
    "question",
    [
        "xin chào",
        "Cho tôi hỏi",
        "cảm ơn bạn nhé",
        "thế nào",
        "có không",
        "là gì vậy",
        "giá bao nhiêu",
        "gia bao nhieu",
        "doi ngu the nao",
        "nguồn cung lưu hành của nó",
    ],
)
def test_vietnamese_words_never_resolve_as_coins(question: str) -> None:
    resolution = resolve_offline(question, bundled_index())
    assert resolution.project is None, (question, resolution.matched)
    # and nothing Vietnamese is sent to CoinGecko's /search as a coin name
    assert search_query(question) is None, question


def test_vietnamese_follow_ups_refer_back() -> None:
    for question in (
        "còn đội ngũ thì sao?",
        "nguồn cung của nó",
        "có nên mua không",
        "con tokenomics thi sao",
    ):
        assert refers_back(question), question
    assert not refers_back("xin chào")


@pytest.fixture
def agent_deps(deps: Deps, with_http: WithHttp, sources: FakeSources) -> Deps:
    sources.extra_coins |= {"chainlink", "arbitrum", "pepe"}
    return fast_http(with_http(deps, sources.transport()))


async def test_graph_answers_the_issue_examples_in_vietnamese(agent_deps: Deps) -> None:
    full = await answer(agent_deps, "Phân tích Uniswap")
    assert full.project is not None and full.project.id == "uniswap"
    assert full.plan.tools == list(ALL) and full.language == "vi"
    assert "**Tóm tắt.**" in full.answer and "**Rủi ro chính**" in full.answer
    assert "Không phải lời khuyên tài chính" in full.answer and "**Nguồn**" in full.answer
    assert "Executive summary" not in full.answer and "Not financial advice" not in full.answer
    for question, tool, coin in (
        ("Tokenomics của PEPE thế nào?", "tokenomics", "pepe"),
        ("Đội ngũ Chainlink có uy tín không?", "team", "chainlink"),
        ("Nguồn cung lưu hành của Arbitrum", "tokenomics", "arbitrum"),
    ):
        final = await answer(agent_deps, question)
        assert final.project is not None and final.project.id == coin, question
        assert final.plan.tools == [tool] and final.language == "vi", question
        assert "KHÔNG KHUYẾN NGHỊ (NO CALL)" in final.answer, question


async def test_language_hint_and_saved_choice_reach_the_answer(agent_deps: Deps) -> None:
    # "$UNI?" has no language of its own: the saved choice wins over the platform hint
    hinted = await answer(agent_deps, "$UNI?", language_hint="vi-VN,vi;q=0.9")
    assert hinted.language == "vi" and "**Tóm tắt.**" in hinted.answer
    saved = await answer(agent_deps, "$UNI?", saved_language="en", language_hint="vi")
    assert saved.language == "en" and "**Executive summary.**" in saved.answer
    # the message's own language beats both
    own = await answer(agent_deps, "research uniswap", saved_language="vi", language_hint="vi")
    assert own.language == "en"
    forced = await answer(agent_deps, "research uniswap", language="vi")
    assert forced.language == "vi" and "**Điểm nổi bật**" in forced.answer


def test_cached_answers_are_kept_per_language(deps: Deps) -> None:
    from agent.answer_cache import answer_key
    from agent.rules import Plan
    from agent.turn_cache import turn_key

    assert turn_key(deps, "$UNI?", None, "vi") != turn_key(deps, "$UNI?", None, "en")
    assert turn_key(deps, "$UNI?", None) == turn_key(deps, "$UNI?", None, "en")
    plan = Plan.of(["onchain"], intent="aspects")
    keys = {
        answer_key(deps, plan=plan, project_id="uniswap", results={}, models=["m"], language=lang)
        for lang in ("en", "vi")
    }
    assert len(keys) == 2


def test_llm_planner_prompt_has_the_vietnamese_vocabulary() -> None:
    from agent.prompts import PLANNER_RULES

    for word in (
        "phân tích",
        "đánh giá",
        "có nên mua",
        "vốn hóa",
        "thanh khoản",
        "cộng đồng",
        "tâm lý",
        "nguồn cung",
        "mở khóa",
        "đội ngũ",
        "kiểm toán",
        "thế nào",
    ):
        assert word in PLANNER_RULES, word


async def test_vietnamese_greeting_gets_vietnamese_help(agent_deps: Deps) -> None:
    final = await answer(agent_deps, "xin chào, bạn giúp được gì?")
    assert final.project is None and final.plan.tools == [] and final.language == "vi"
    assert final.answer.startswith("Xin chào!") and "Phân tích Uniswap" in final.answer


async def test_chat_turn_passes_the_channels_language_hints(agent_deps: Deps) -> None:
    from chainlens.chat import ChatTurn, chat

    turn = ChatTurn(
        identity="telegram:991", channel="telegram", text="$UNI?", language_hint="vi"
    )  # Telegram's language_code
    events = [event async for event in chat(agent_deps, turn)]
    final = events[-1]
    assert isinstance(final, FinalEvent) and final.language == "vi"
    assert "**Tóm tắt.**" in final.answer
