"""The output guard on Vietnamese answers: figures written the Vietnamese way are checked
against the data like English ones, and Vietnamese stance words cannot change the stance.
End to end: the model is told to answer in Vietnamese and its figures still pass the guard."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from agent import answer
from agent.guard import WITHHELD, AnswerGuard, allowed_values, vi_readings
from agent.prompts import writer_system
from chainlens.deps import Deps
from chainlens.i18n import localizer
from test_agent_support import (  # noqa: F401  (fixtures)
    FakeLLM,
    Reply,
    llm_server,
    llm_server_session,
    with_llm,
)
from tests.tools_fakes import FakeSources, fast_http
from tools.results import OnchainResult

WithHttp = Callable[[Deps, httpx.AsyncBaseTransport], Deps]


def vi_guard(stance: str = "HOLD") -> AnswerGuard:
    values = [1.52e9, 7.4231, 234_567_890.0, 384_512, 0.5812, -3.21, 1234.5]
    return AnswerGuard(
        allowed=allowed_values(values, language="vi"),
        urls=[],
        stance=stance,
        risk_score=6,
        language="vi",
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "line",
    [
        "Vốn hóa đạt 1,52 tỷ USD.",
        "Giá hiện tại 7,42 USD.",
        "Khối lượng 234,57 triệu USD.",
        "Có 384.512 người nắm giữ.",
        "10 ví lớn nhất nắm 58,1%.",
        "Giá giảm 3,2% trong 24 giờ.",
        "Con số 1.234,5 khớp dữ liệu.",
        "Vốn hóa $1.52B (English slip).",
        "Trong 90 ngày qua.",
    ],
)
def test_vietnamese_figures_from_the_data_pass(line: str) -> None:
    guard = vi_guard()
    assert guard.check_line(line) == line and guard.withheld == 0


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("Vốn hóa đạt 2,7 tỷ USD.", f"Vốn hóa đạt {WITHHELD} USD."),
        ("Giá mục tiêu 15,80 USD.", f"Giá mục tiêu {WITHHELD} USD."),
        ("Có 999.999 người nắm giữ.", f"Có {WITHHELD} người nắm giữ."),
        ("Khối lượng 88 triệu USD.", f"Khối lượng {WITHHELD} USD."),
    ],
)
def test_invented_vietnamese_figures_are_withheld(line: str, shown: str) -> None:
    guard = vi_guard()
    assert guard.check_line(line) == shown and guard.withheld == 1


def test_vietnamese_stance_words_cannot_change_the_stance() -> None:
    guard = vi_guard("HOLD")
    assert guard.check_line("**Quan điểm: MUA (BUY)**") is None
    assert guard.check_line("Bạn nên mua ngay hôm nay.") is None
    assert guard.check_line("**Quan điểm: GIỮ (HOLD)**") == "**Quan điểm: GIỮ (HOLD)**"
    assert guard.check_line("Không nên mua thêm lúc này.") == "Không nên mua thêm lúc này."
    avoid = vi_guard("AVOID")
    assert avoid.check_line("Nhà đầu tư nên tránh dự án này.") is not None
    assert avoid.check_line("Nên gom thêm.") is None


def test_a_different_vietnamese_risk_score_is_corrected() -> None:
    guard = vi_guard()
    assert (
        guard.check_line("**Điểm rủi ro: 2/10** · **Quan điểm: GIỮ (HOLD)**")
        == "**Điểm rủi ro: 6/10** · **Quan điểm: GIỮ (HOLD)**"
    )


def test_readings_of_ambiguous_digits() -> None:
    assert vi_readings("1,52", "tỷ") == [(1.52e9, 5e6, True)]
    assert {v for v, _, _ in vi_readings("1.234", "")} == {1234.0, 1.234}
    assert vi_readings("1.2.3", "") == []


def test_english_guard_is_unchanged_by_default() -> None:
    guard = AnswerGuard(allowed=allowed_values([1.52e9]), urls=[], stance="HOLD", risk_score=6)
    assert guard.check_line("Market cap $1.52B.") == "Market cap $1.52B."
    assert guard.check_line("Vốn hóa 1,52 tỷ USD.") != "Vốn hóa 1,52 tỷ USD."  # read as English


def test_writer_prompt_names_the_language() -> None:
    assert "Vietnamese" in writer_system("vi") and "Quan điểm: <STANCE>" in writer_system("vi")
    assert "Vietnamese" not in writer_system("en")


@pytest.fixture
def data_deps(deps: Deps, with_http: WithHttp, sources: FakeSources) -> Deps:
    return fast_http(with_http(deps, sources.transport()))


async def test_model_answers_in_vietnamese_and_the_guard_checks_its_figures(
    data_deps: Deps, llm_server: FakeLLM
) -> None:
    plain = await answer(data_deps, "Giá Uniswap")  # no model: the tools' data, hot-cached
    onchain = plain.results["onchain"]
    assert isinstance(onchain, OnchainResult) and onchain.price_usd is not None
    price = localizer("vi").usd(onchain.price_usd)
    llm_server.script(
        "m",
        Reply(tool_calls=["onchain"]),
        Reply(
            text=(
                f"**Tóm tắt.** Giá Uniswap hiện là {price}; mục tiêu 987,65 USD là bịa.\n\n"
                "**Điểm nổi bật**\n1. Giá ổn định.\n2. Thanh khoản tốt.\n3. Cộng đồng lớn.\n\n"
                "**Rủi ro chính**\n- Biến động.\n"
            )
        ),
    )
    deps = with_llm(data_deps, llm_server, "m")
    final = await answer(deps, "Giá Uniswap")
    assert final.writer == "llm" and final.language == "vi"
    writer_request = [r for r in llm_server.requests if r.get("stream")][-1]
    assert "write the whole answer in Vietnamese" in writer_request["messages"][0]["content"]
    assert price in writer_request["messages"][1]["content"]  # the data is in Vietnamese too
    assert f"Giá Uniswap hiện là {price}" in final.answer
    assert "987,65" not in final.answer and WITHHELD in final.answer
    # the model left out the verdict line: it is added in Vietnamese
    assert "Quan điểm: KHÔNG KHUYẾN NGHỊ (NO CALL)" in final.answer
    assert "Không phải lời khuyên tài chính" in final.answer and "**Nguồn**" in final.answer
