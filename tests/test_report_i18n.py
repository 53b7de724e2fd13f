"""The daily report and alert notifications in each subscriber's language: built once per date,
rendered once per (language, channel, edition) in a send run, delivered once per subscriber
through real procrastinate workers and the strict fakes of Telegram, Discord and SendGrid.

Snapshots of the writer's output in both languages are committed in tests/snapshots/report_*;
regenerate them after an intended wording change with
`CHAINLENS_UPDATE_SNAPSHOTS=1 pytest tests/test_report_i18n.py` and review the diff."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.accounts import account_for_identity, set_language
from chainlens.cli import _register_optional_commands, main
from chainlens.deps import Deps
from chainlens.i18n import localizer
from chainlens.settings import Settings
from reports import render
from reports.build import build_report, deterministic_intro
from reports.content import Intro, MarketOverview, ProjectLine, Quote, ReportContent
from reports.deliver import broadcast_report, renders_done
from reports.jobs import defer_broadcast
from reports.ledger import state_counts
from reports.store import save_report
from reports.subscriptions import get_subscription, subscribe
from reports.subscriptions import set_language as set_report_language
from reports.watch import AlertSpec, create_alert, watch
from tests import telegram_updates as tu
from tests.alerts_fakes import PriceSources
from tests.fake_delivery_env import (
    Fakes,
    add_subscriber,
    delivery_deps,
    drain,
    running_fakes,
)
from tests.fake_delivery_telegram import parse_html
from tests.test_bots_discord import Bot, bot  # noqa: F401  (fixture)
from tests.test_bots_telegram import PRIVATE, Harness, tg  # noqa: F401  (fixture)

DAY = date(2026, 12, 1)
REF = DAY.isoformat()
SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with running_fakes() as running:
        yield running


@pytest.fixture
def sources() -> PriceSources:
    return PriceSources()


@pytest.fixture
async def ddeps(deps: Deps, fakes: Fakes, sources: PriceSources) -> AsyncIterator[Deps]:
    async with delivery_deps(deps, fakes, sources) as opened:
        yield opened


async def built(deps: Deps) -> ReportContent:
    await deps.db.execute(
        "INSERT INTO projects (id, symbol, name) VALUES ('uniswap', 'uni', "
        "'Uniswap') ON CONFLICT DO NOTHING"
    )
    await deps.db.execute(
        "INSERT INTO project_usage VALUES ('uniswap', $1, 4) ON CONFLICT DO NOTHING", DAY
    )
    content, chart = await build_report(deps, DAY)
    await save_report(deps, content, chart)
    return content


async def speaks(
    deps: Deps,
    channel: str,
    destination: str,
    language: str | None,
    *,
    tier: str = "free",
    own: str | None = None,
) -> None:
    """A subscriber whose account speaks `language`; `own`: the subscription's own language."""
    await add_subscriber(deps, channel, destination, tier=tier)
    sub = await get_subscription(deps, channel=channel, destination=destination)  # type: ignore[arg-type]
    assert sub is not None
    await set_language(deps, sub.account_id, language)
    if own is not None:
        await set_report_language(
            deps,
            channel=channel,
            destination=destination,  # type: ignore[arg-type]
            language=own,
        )


# --- one send, each subscriber in their language, each once ------------------------------------


async def test_vietnamese_and_english_subscribers_in_one_send(ddeps: Deps, fakes: Fakes) -> None:
    content = await built(ddeps)
    vi_chats = [str(8100 + i) for i in range(6)]
    en_chats = [str(8200 + i) for i in range(6)]
    for chat in vi_chats:
        await speaks(ddeps, "telegram", chat, "vi")
    for chat in en_chats:
        await speaks(ddeps, "telegram", chat, None)  # no choice: English
    # a Pro account speaking English, subscribing a group in Vietnamese: the group's choice wins
    await speaks(ddeps, "telegram", "-100810", "en", tier="pro", own="vi")
    await speaks(ddeps, "discord", "981000", "vi", tier="pro")
    await speaks(ddeps, "email", "doc-gia@example.vn", "vi")
    await speaks(ddeps, "email", "reader@example.com", "en")

    before = renders_done()
    assert await defer_broadcast(DAY)
    await drain(ddeps, REF)
    # telegram headline en+vi, telegram full vi, discord full vi, e-mail headline vi and en
    assert renders_done() - before == 6

    for chat in vi_chats + en_chats + ["-100810"]:
        assert [a.method for a in fakes.telegram.to(chat)] == ["sendPhoto", "sendMessage"], chat
    vi = fakes.telegram.to(vi_chats[0])
    en = fakes.telegram.to(en_chats[0])
    vi_text, en_text = vi[1].text, en[1].text
    # the strict fake parsed the HTML and measured it; parse again to be explicit
    assert len(parse_html(vi_text).encode("utf-16-le")) // 2 <= 4096
    assert "Bản tin alpha ChainLens — 01/12/2026" in vi[0].text  # the chart's caption
    for heading in (
        "Thị trường",
        "Được hỏi nhiều nhất",
        "Biến động mạnh nhất",
        "Báo cáo đầy đủ",
        "Không phải lời khuyên tài chính",
    ):
        assert heading in vi_text, heading
    assert "2,40 nghìn tỷ USD" in vi_text  # total market cap, Vietnamese number formatting
    assert "+2,5%" in vi_text and "Tham lam" in vi_text
    assert "bản đầy đủ dành cho gói Pro" in vi_text  # the free (headline) edition
    assert "Market" not in vi_text and "Most asked about" not in vi_text
    for heading in (
        "ChainLens daily alpha — 01 Dec 2026",
        "Market",
        "Most asked about",
        "Biggest movers",
        "Not financial advice",
        "$2.40T",
        "+2.5%",
        "Greed",
    ):
        assert heading in en[0].text + en_text, heading
    assert "Thị trường" not in en_text
    group = fakes.telegram.to("-100810")[1].text
    assert "Cờ rủi ro (GoPlus)" in group and "gói Pro" not in group  # Pro, in Vietnamese

    posted = fakes.discord.to("981000")
    assert len(posted) == 1
    embed = posted[0].payload["embeds"][0]
    assert embed["title"] == "Bản tin alpha ChainLens — 01/12/2026"
    assert "Không phải lời khuyên tài chính" in embed["footer"]["text"]

    (vi_mail,) = fakes.sendgrid.to("doc-gia@example.vn")
    (en_mail,) = fakes.sendgrid.to("reader@example.com")
    assert vi_mail.subject == "Bản tin alpha ChainLens — 01/12/2026"
    assert en_mail.subject == "ChainLens daily alpha — 01 Dec 2026"
    assert "THỊ TRƯỜNG" in vi_mail.text and "Hủy đăng ký: http" in vi_mail.text
    assert "<h2>Thị trường</h2>" in vi_mail.html and 'lang="vi"' in vi_mail.html
    assert "hủy đăng ký</a>" in vi_mail.html and "/reports/unsubscribe?token=" in vi_mail.html
    assert "MARKET" in en_mail.text and "Unsubscribe: http" in en_mail.text
    assert fakes.sendgrid.requests == 2  # one batch per language

    counts = await state_counts(ddeps, "report", REF)
    assert counts == {"telegram": {"sent": 13}, "discord": {"sent": 1}, "email": {"sent": 2}}
    # the data was built once; the ledger records each row's language
    rows = dict(await ddeps.db.fetch("SELECT destination, language FROM deliveries"))
    assert rows[vi_chats[0]] == "vi" and rows[en_chats[0]] == "en" and rows["-100810"] == "vi"
    assert content.projects[0].insight_in("vi") != content.projects[0].insight_in("en")

    # More subscribers the same day (`report send` again): the renderings are reused.
    await speaks(ddeps, "telegram", "8300", "vi")
    await speaks(ddeps, "telegram", "8301", None)
    before = renders_done()
    await broadcast_report(ddeps, DAY)
    await drain(ddeps, REF)
    assert renders_done() == before  # cached per (date, language, channel, edition)
    assert "Thị trường" in fakes.telegram.to("8300")[1].text
    assert "Market" in fakes.telegram.to("8301")[1].text
    assert len(fakes.telegram.to(vi_chats[0])) == 2  # nobody repeated


async def test_the_watchlist_section_in_vietnamese(ddeps: Deps, fakes: Fakes) -> None:
    await built(ddeps)
    await speaks(ddeps, "telegram", "8701", "vi")
    await speaks(ddeps, "email", "theo-doi@example.vn", "vi")
    for identity in ("telegram:8701", "web:theo-doi@example.vn"):
        account = await account_for_identity(ddeps, identity)
        await watch(ddeps, account.id, "BTC")
        await watch(ddeps, account.id, "ETH")  # the fake has no quote for it
    await defer_broadcast(DAY)
    await drain(ddeps, REF)
    parts = fakes.telegram.to("8701")
    assert [p.method for p in parts] == ["sendPhoto", "sendMessage", "sendMessage"]
    section = parts[-1].text
    assert section.startswith("👀 <b>Danh sách theo dõi của bạn</b>")
    assert "Bitcoin (BTC) 10,00 USD" in section and "Ethereum (ETH): hiện chưa có giá" in section
    (mail,) = fakes.sendgrid.to("theo-doi@example.vn")
    assert "<h2>Danh sách theo dõi của bạn</h2>" in mail.html and "Giá: CoinGecko." in mail.html
    assert "DANH SÁCH THEO DÕI CỦA BẠN (CoinGecko)" in mail.text


async def test_a_language_change_after_fan_out_sends_nothing_twice(
    ddeps: Deps, fakes: Fakes
) -> None:
    await built(ddeps)
    await speaks(ddeps, "telegram", "8401", "vi")
    await speaks(ddeps, "email", "doi-y@example.vn", "vi")
    fakes.telegram.cue("8401", "error500")  # the first attempt fails: the row is retried
    await broadcast_report(ddeps, DAY)  # rows created (in Vietnamese), jobs deferred
    sub = await get_subscription(ddeps, channel="telegram", destination="8401")
    assert sub is not None
    # the subscriber switches to English before the send (and its retry) happens
    await set_language(ddeps, sub.account_id, "en")
    await set_report_language(ddeps, channel="email", destination="doi-y@example.vn", language="en")
    await drain(ddeps, REF)
    await broadcast_report(ddeps, DAY)  # `report send` again
    await drain(ddeps, REF)
    arrived = fakes.telegram.to("8401")
    assert [a.method for a in arrived] == ["sendPhoto", "sendMessage"]  # once, and whole
    assert "Thị trường" in arrived[1].text  # in the language it was fanned out with
    assert [code for _, code, _ in fakes.telegram.refused] == [500]
    assert len(fakes.sendgrid.to("doi-y@example.vn")) == 1
    assert await state_counts(ddeps, "report", REF) == {
        "telegram": {"sent": 1},
        "email": {"sent": 1},
    }
    # the next report follows the new choice
    assert (
        await get_subscription(ddeps, channel="email", destination="doi-y@example.vn")
    ).language == "en"  # type: ignore[union-attr]


async def test_subscribe_with_a_language_and_keep_it_on_resubscribe(ddeps: Deps) -> None:
    account = await account_for_identity(ddeps, "telegram:8501")
    sub, _ = await subscribe(
        ddeps, account_id=account.id, channel="telegram", destination="-8501", language="vi"
    )
    assert sub.language == "vi"
    again, _ = await subscribe(
        ddeps, account_id=account.id, channel="telegram", destination="-8501"
    )
    assert again.language == "vi"  # no language given: the destination keeps its choice
    with pytest.raises(ValueError, match="unsupported language 'fr'"):
        await subscribe(
            ddeps, account_id=account.id, channel="telegram", destination="-8502", language="fr"
        )
    assert await get_subscription(ddeps, channel="telegram", destination="-8502") is None


async def test_alpha_with_a_language_in_telegram(tg: Harness) -> None:
    await tg.send(tu.message("/alpha vi"))
    assert tg.replies()[-1].startswith("Subscribed")
    sub = await get_subscription(tg.deps, channel="telegram", destination=str(PRIVATE))
    assert sub is not None and sub.receiving and sub.language == "vi"
    await tg.send(tu.message("/alpha en"))  # already subscribed: the language changes
    sub = await get_subscription(tg.deps, channel="telegram", destination=str(PRIVATE))
    assert sub is not None and sub.receiving and sub.language == "en"


async def test_alpha_subscribe_with_a_language_in_discord(bot: Bot) -> None:
    payload = bot.fake.slash(
        "alpha",
        [
            {
                "name": "subscribe",
                "type": 1,
                "options": [{"name": "language", "type": 3, "value": "vi"}],
            }
        ],
    )
    await bot.dispatch(payload)
    [message] = bot.fake.messages_of(payload)
    assert message["content"].startswith("Subscribed")
    sub = await get_subscription(
        bot.deps, channel="discord", destination=str(payload["channel_id"])
    )
    assert sub is not None and sub.receiving and sub.language == "vi"


# --- alerts ----------------------------------------------------------------------------------


async def test_alert_notification_in_vietnamese(
    ddeps: Deps, sources: PriceSources, fakes: Fakes
) -> None:
    from reports.alerts import evaluate_prices
    from tests.test_alerts_eval import drain as drain_alerts

    vi = await account_for_identity(ddeps, "telegram:8601")
    await set_language(ddeps, vi.id, "vi")
    en = await account_for_identity(ddeps, "telegram:8602")
    await create_alert(
        ddeps, vi.id, "BTC", AlertSpec("above", 70000.0), channel="telegram", destination="8601"
    )
    await create_alert(
        ddeps, en.id, "BTC", AlertSpec("above", 70000.0), channel="telegram", destination="8602"
    )
    mail = await create_alert(
        ddeps,
        vi.id,
        "ETH",
        AlertSpec("move", 5.0),
        channel="email",
        destination="canh-bao@example.vn",
    )
    sources.set("bitcoin", 70250.5)
    sources.set("ethereum", 3100.0, change=-6.25)
    summary = await evaluate_prices(ddeps)
    assert summary.fired == 3
    await drain_alerts(ddeps)

    (vi_msg,) = fakes.telegram.to("8601")
    assert "Bitcoin (BTC) đã vượt 70.000 USD: 70.250,50 USD" in vi_msg.text
    assert "Nguồn: CoinGecko" in vi_msg.text and "Cảnh báo sẽ bật lại khi giá giảm" in vi_msg.text
    assert "giá trên 70.000 USD" in vi_msg.text and "/alert delete" in vi_msg.text
    assert vi_msg.markup == {
        "inline_keyboard": [
            [
                {"text": "🔎 Phân tích", "callback_data": "research:bitcoin"},
                {"text": "📈 Biểu đồ", "callback_data": "ask:chart:bitcoin"},
            ]
        ]
    }
    (en_msg,) = fakes.telegram.to("8602")
    assert "Bitcoin (BTC) is above $70,000: $70,250.50" in en_msg.text
    assert en_msg.markup["inline_keyboard"][0][0]["text"] == "🔎 Research"  # type: ignore[index]
    (email,) = fakes.sendgrid.to("canh-bao@example.vn")
    assert (
        email.subject == "Cảnh báo ChainLens: Ethereum (ETH) biến động -6,2% trong 24 giờ"
        or email.subject == "Cảnh báo ChainLens: Ethereum (ETH) biến động -6,3% trong 24 giờ"
    )
    assert f"Cảnh báo #{mail.id}: biến động 24 giờ ±5%." in email.text
    assert "Quản lý cảnh báo: http" in email.text and "Quản lý cảnh báo</a>" in email.html
    languages = {
        r["destination"]: r["language"]
        for r in await ddeps.db.fetch(
            "SELECT destination, language FROM deliveries WHERE kind = 'alert'"
        )
    }
    assert languages == {"8601": "vi", "8602": "en", "canh-bao@example.vn": "vi"}


# --- the writer's output in both languages (snapshots) ----------------------------------------


def fixed_content() -> ReportContent:
    """A report with every section: fixed figures, times and ages."""
    built_at = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    market = MarketOverview(
        btc=Quote(
            id="bitcoin",
            symbol="BTC",
            price_usd=97123.45,
            change_24h_pct=2.46,
            as_of=built_at - timedelta(minutes=4),
        ),
        eth=Quote(
            id="ethereum",
            symbol="ETH",
            price_usd=3512.5,
            change_24h_pct=-1.04,
            as_of=built_at - timedelta(minutes=4),
        ),
        total_market_cap_usd=3.41e12,
        total_market_cap_change_24h_pct=1.2,
        total_as_of=built_at - timedelta(minutes=12),
        fear_greed=72,
        fear_greed_label="Greed",
        fear_greed_as_of=built_at - timedelta(hours=7),
    )
    loc_en, loc_vi = localizer("en"), localizer("vi")
    uni = ProjectLine(
        id="uniswap",
        name="Uniswap",
        symbol="UNI",
        query_count=1234,
        price_usd=12.345,
        change_24h_pct=5.25,
        sentiment_score=64.4,
        sentiment_label="bullish",
        insight="Top 10 wallets control 62% of supply",
        insights={
            "en": "Top 10 wallets control 62% of supply",
            "vi": loc_vi._("Top 10 wallets control {share} of supply").format(
                share=loc_vi.share(0.62)
            ),
        },
        risk_flags=["mintable"],
        risk_flags_by_language={"en": ["mintable"], "vi": [loc_vi._("mintable")]},
        as_of=built_at - timedelta(minutes=30),
        age_seconds=1800,
        stale=False,
        url="https://www.coingecko.com/en/coins/uniswap",
    )
    pepe = ProjectLine(
        id="pepe",
        name="Pepe",
        symbol="PEPE",
        query_count=0,
        price_usd=0.00001234,
        change_24h_pct=-8.5,
        sentiment_score=None,
        insight="No fresh data today",
        insights={"en": "No fresh data today", "vi": loc_vi._("No fresh data today")},
        as_of=built_at - timedelta(hours=3),
        age_seconds=3 * 3600,
        stale=True,
        url="https://www.coingecko.com/en/coins/pepe",
    )
    lines = [uni, pepe]
    movers = ["pepe", "uniswap"]
    intros: dict[str, Intro] = {
        loc.language: Intro(
            text=deterministic_intro(market, lines, movers, loc), by="deterministic"
        )
        for loc in (loc_en, loc_vi)
    }
    return ReportContent(
        report_date=DAY,
        generated_at=built_at,
        market=market,
        projects=lines,
        movers=movers,
        intro=intros["en"].text,
        intro_by="deterministic",
        intros=intros,
        has_chart=True,
    )


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("CHAINLENS_UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("language", ["en", "vi"])
def test_writer_snapshots(language: str) -> None:
    content = fixed_content()
    loc = localizer(language)
    full = render.report_markdown(content, "full", loc=loc)
    headline = render.report_markdown(content, "headline", full_url="https://x.test/r", loc=loc)
    mail = render.email_message(
        content, "headline", full_url="https://x.test/r", chart_url="https://x.test/c.png", loc=loc
    )
    check_snapshot(f"report_full.{language}.md", full + "\n")
    check_snapshot(f"report_headline.{language}.md", headline + "\n")
    check_snapshot(f"report_email.{language}.txt", f"Subject: {mail.subject}\n\n{mail.text}")
    parts = render.telegram_parts(content, "full", full_url="https://x.test/r", loc=loc)
    for part in parts:
        parse_html(part.html)  # Telegram would accept it
    check_snapshot(f"report_telegram.{language}.html", parts[-1].html + "\n")
    if language == "vi":
        for phrase in (
            "# Bản tin alpha ChainLens — 01/12/2026",
            "## Thị trường",
            "## Được hỏi nhiều nhất",
            "## Biến động mạnh nhất",
            "## Cờ rủi ro (GoPlus)",
            "3,41 nghìn tỷ USD",
            "97\\.123,45 USD",
            "1\\.234 câu hỏi",
            "4 phút trước",
            "7 giờ trước",
            "Tham lam",
            "Không phải lời khuyên tài chính",
        ):
            assert phrase in full, phrase
        assert "0,00001234 USD" in full and "dữ liệu cũ" in full
    else:
        for phrase in (
            "# ChainLens daily alpha — 01 Dec 2026",
            "## Market",
            "$3\\.41T",
            "$97,123\\.45",
            "1,234 questions",
            "4 min old",
            "Greed",
        ):
            assert phrase in full, phrase


# --- the command line ------------------------------------------------------------------------


def test_report_build_and_preview_in_vietnamese(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`chainlens report build --lang vi` and `report preview --lang vi` with every data source
    on a closed local port: the report says in Vietnamese what it could not get."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setenv("LLM_MODELS", "")
    for var in (
        "COINGECKO_BASE_URL",
        "DEFILLAMA_BASE_URL",
        "GOPLUS_BASE_URL",
        "GITHUB_API_URL",
        "FEAR_GREED_URL",
        "TELEGRAM_API_BASE",
    ):
        monkeypatch.setenv(var, "http://127.0.0.1:9/x")
    monkeypatch.setenv("NEWS_FEEDS", "http://127.0.0.1:9/feed.xml")
    monkeypatch.setenv("HTTP_TIMEOUT_S", "0.5")
    _register_optional_commands()
    runner = CliRunner()
    built = runner.invoke(main, ["report", "build", "--date", REF, "--lang", "vi"])
    assert built.exit_code == 0, built.output
    assert "# Bản tin alpha ChainLens — 01/12/2026" in built.output
    assert "## Thị trường" in built.output and "Bitcoin: chưa có giá" in built.output
    assert "Sáng nay chưa có dữ liệu thị trường" in built.output
    mail = runner.invoke(
        main,
        [
            "report",
            "preview",
            "--date",
            REF,
            "--lang",
            "vi",
            "--channel",
            "email",
            "--edition",
            "headline",
        ],
    )
    assert mail.exit_code == 0, mail.output
    assert mail.output.startswith("Subject: Bản tin alpha ChainLens — 01/12/2026")
    assert "Hủy đăng ký: %unsubscribe_url%" in mail.output
    english = runner.invoke(main, ["report", "preview", "--date", REF, "--channel", "telegram"])
    assert english.exit_code == 0 and "<b>Market</b>" in english.output, english.output
    missing = runner.invoke(main, ["report", "preview", "--date", "2026-11-01", "--lang", "vi"])
    assert missing.exit_code == 2 and "no report for 2026-11-01" in missing.output
    wrong = runner.invoke(main, ["report", "preview", "--lang", "fr"])
    assert wrong.exit_code == 2 and "'fr' is not one of 'en', 'vi'" in wrong.output
