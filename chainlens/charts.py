"""Price charts as PNG images, for the channels that show images (web widget, Telegram, Discord)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime


def render_price_chart(title: str, points: Sequence[tuple[int, float]], *,
                       width_px: int = 640, height_px: int = 320) -> bytes:
    """A line chart of (epoch ms, USD) points as PNG bytes; raises ValueError with < 2 points."""
    if len(points) < 2:
        raise ValueError("a chart needs at least two price points")
    # Imported here: matplotlib is slow to import and only chart requests need it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    times = [datetime.fromtimestamp(ms / 1000, tz=UTC) for ms, _ in points]
    prices = [price for _, price in points]
    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    axes = figure.add_subplot()
    rising = prices[-1] >= prices[0]
    color = "#2f9e44" if rising else "#e03131"
    axes.plot(times, prices, color=color, linewidth=1.6)
    axes.fill_between(times, prices, min(prices), color=color, alpha=0.08)
    change = (prices[-1] / prices[0] - 1) * 100 if prices[0] else 0.0
    axes.set_title(f"{title}  {_usd(prices[-1])}  ({change:+.1f}%)", fontsize=11, loc="left")
    axes.grid(True, alpha=0.25)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    axes.yaxis.set_major_formatter(lambda value, _: _usd(value))
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _usd(value: float) -> str:
    if value >= 1000:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.6g}"


def render_change_bars(title: str, bars: Sequence[tuple[str, float]], *,
                       width_px: int = 640, height_px: int = 360) -> bytes:
    """A horizontal bar chart of (label, % change) as PNG bytes (the daily report's movers)."""
    if not bars:
        raise ValueError("a chart needs at least one bar")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = [label for label, _ in bars][::-1]
    values = [value for _, value in bars][::-1]
    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    axes = figure.add_subplot()
    colors = ["#2f9e44" if v >= 0 else "#e03131" for v in values]
    axes.barh(labels, values, color=colors)
    axes.axvline(0, color="#868e96", linewidth=0.8)
    for y, value in enumerate(values):
        axes.annotate(f"{value:+.1f}%", (value, y), xytext=(3 if value >= 0 else -3, 0),
                      textcoords="offset points", va="center", fontsize=8,
                      ha="left" if value >= 0 else "right")
    axes.set_title(title, fontsize=11, loc="left")
    axes.grid(True, axis="x", alpha=0.25)
    axes.xaxis.set_major_formatter(lambda value, _: f"{value:+.0f}%")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
