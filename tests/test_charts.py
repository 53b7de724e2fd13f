"""Charts that agree with the text: the period is named, the answer's figures are used, and
the date axis carries the year."""

from __future__ import annotations

from chainlens.charts import chart_title, period_label, render_price_chart

DAY = 86_400_000
YEAR_OF_DAYS = [(1_700_000_000_000 + i * DAY, 10.0 + i / 100) for i in range(366)]


def test_title_names_the_period_and_uses_the_answers_figures() -> None:
    title = chart_title("Uniswap (UNI)", YEAR_OF_DAYS, price_usd=13.7, change_24h_pct=-4.4)
    assert "$13.70" in title and "-4.4% 24h" in title
    assert "over 1 y" in title and "+36.5% over 1 y" in title
    assert period_label(0, DAY) == "24 h" and period_label(0, 7 * DAY) == "7 d"


def test_axis_labels_carry_the_year() -> None:
    from chainlens.charts import price_figure

    png = render_price_chart("Uniswap (UNI)", YEAR_OF_DAYS, price_usd=13.7, change_24h_pct=-4.4)
    assert png.startswith(b"\x89PNG")
    for points in (YEAR_OF_DAYS, YEAR_OF_DAYS[-8:]):
        figure = price_figure("Uniswap (UNI)", points)
        figure.canvas.draw()
        labels = [t.get_text() for t in figure.axes[0].get_xticklabels() if t.get_text()]
        assert labels and all(any(y in label for y in ("2023", "2024")) for label in labels)
