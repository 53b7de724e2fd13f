"""The language of a turn: the message's own, else the saved choice, else the platform hint."""

from __future__ import annotations

import pytest

from agent.language import detect_language, hint_language, message_language


@pytest.mark.parametrize(
    "text",
    [
        "Phân tích Uniswap",
        "Tokenomics của PEPE thế nào?",
        "Đội ngũ Chainlink có uy tín không?",
        "Nguồn cung lưu hành của Arbitrum",
        "giá BTC",
        "ETH có tốt không",
        "PHÂN TÍCH SOLANA",
    ],
)
def test_accented_vietnamese(text: str) -> None:
    assert message_language(text) == "vi"
    assert detect_language(text, saved="en", hint="en-US") == "vi"


@pytest.mark.parametrize(
    "text",
    [
        "phan tich uniswap",
        "tokenomics cua pepe the nao",
        "doi ngu chainlink co uy tin khong",
        "nguon cung luu hanh cua arbitrum",
        "gia btc hom nay",
        "co nen mua eth khong",
        "danh gia solana",
        "tim hieu ve polkadot",
        "btc gia bao nhieu",
    ],
)
def test_unaccented_vietnamese(text: str) -> None:
    assert message_language(text) == "vi"
    assert detect_language(text, hint="en") == "vi"


@pytest.mark.parametrize(
    "text",
    [
        "Research Uniswap",
        "What's SOL trading at?",
        "is the pepe team legit",
        "ETH tokenomics?",
        "should I buy link",
        "what is the price of Coin98?",
        # English with a Vietnamese coin name, accented or not
        "What is the price of Bánh Mì coin?",
        "tell me about the Đồng token",
        "research Axie Infinity and its team",
        "how is Kyber Network doing today",
    ],
)
def test_english_including_vietnamese_names(text: str) -> None:
    assert message_language(text) == "en"
    assert detect_language(text, saved="vi", hint="vi-VN") == "en"


@pytest.mark.parametrize(
    "text", ["$SOL?", "uniswap", "BTC", "0x1f9840a85d5af5bf1d1762f925bdaddc4201f984", "", "👍"]
)
def test_messages_without_a_language_fall_back(text: str) -> None:
    assert message_language(text) is None
    assert detect_language(text) == "en"
    assert detect_language(text, hint="vi") == "vi"  # Telegram language_code
    assert detect_language(text, hint="vi_VN") == "vi"
    assert detect_language(text, saved="vi", hint="en-GB") == "vi"  # the saved choice first
    assert detect_language(text, saved="en", hint="vi") == "en"
    assert detect_language(text, saved="fr", hint="vi") == "vi"  # unsupported choice: ignored


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("vi-VN,vi;q=0.9,en-US;q=0.8,en;q=0.7", "vi"),
        ("en-US,en;q=0.9,vi;q=0.8", "en"),
        ("fr-FR,fr;q=0.9,vi;q=0.5", "vi"),  # the first supported one by quality
        ("fr-FR;q=0.9,vi;q=0.95", "vi"),
        ("vi;q=0", None),  # q=0 means "not acceptable"
        ("de-DE", None),
        ("", None),
        ("vi;q=abc", None),
        ("*", None),
        ("en-US", "en"),
        ("vi", "vi"),  # Discord locales
    ],
)
def test_accept_language_and_locales(header: str, language: str | None) -> None:
    assert hint_language(header) == language
