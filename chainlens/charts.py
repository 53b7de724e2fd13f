"""Price charts as PNG images, for the channels that show images (web widget, Telegram, Discord).

A render costs about a quarter of a second of CPU, so the web's chart of a project's newest
snapshot (`snapshot_chart`) and of a comparison's projects (`comparison_chart`: their prices
normalised to 100 at a common start, one line each) is rendered once per set of snapshots and
kept in Redis, and at most `CHART_RENDER_CONCURRENCY` renders run at once in a process.
The bots draw the same comparison chart from the answer itself (`answer_overlay`).

Errors: `NoChart` (no stored price history), `ChartBusy` (no render slot in time).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from chainlens.deps import Deps
from chainlens.i18n import ENGLISH, N_, Localizer

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tools.results import Project

log = logging.getLogger(__name__)
_CACHE_TTL_S = 24 * 3600  # a snapshot never changes; the day only bounds Redis memory
_SLOT_WAIT_S = 10.0


class NoChart(Exception):
    """No stored price history to draw for this project (or these projects: `missing`)."""

    def __init__(self, *project_ids: str) -> None:
        super().__init__(", ".join(project_ids))
        self.missing = project_ids


class ChartBusy(Exception):
    """Every render slot stayed taken for the whole wait."""


@dataclass(frozen=True, slots=True)
class Chart:
    png: bytes
    version: str  # the snapshot id(s) drawn: a new version whenever the data is newer


async def snapshot_chart(deps: Deps, project_id: str, slots: asyncio.Semaphore) -> Chart:
    """The PNG chart of the project's newest on-chain snapshot, rendered once per snapshot."""
    snapshot_id = await deps.db.fetchval(
        """SELECT id FROM analysis_snapshots WHERE project_id = $1 AND module = 'onchain'
           ORDER BY fetched_at DESC LIMIT 1""",
        project_id,
    )
    if snapshot_id is None:
        raise NoChart(project_id)
    png = await _cached_render(
        deps,
        deps.keys("chart", project_id, snapshot_id),
        slots,
        lambda: _render_snapshot(deps, project_id, int(snapshot_id)),
    )
    return Chart(png, str(snapshot_id))


async def comparison_chart(
    deps: Deps, project_ids: Sequence[str], slots: asyncio.Semaphore, loc: Localizer = ENGLISH
) -> Chart:
    """The projects' prices from each one's newest on-chain snapshot, normalised to 100 at a
    common start, one line each (in the order given); rendered once per set of snapshots."""
    rows = await deps.db.fetch(
        """SELECT DISTINCT ON (project_id) project_id, id FROM analysis_snapshots
           WHERE project_id = ANY($1::text[]) AND module = 'onchain'
           ORDER BY project_id, fetched_at DESC""",
        list(project_ids),
    )
    snapshots = {str(r["project_id"]): int(r["id"]) for r in rows}
    missing = [p for p in project_ids if p not in snapshots]
    if missing:
        raise NoChart(*missing)
    version = "-".join(str(snapshots[p]) for p in project_ids)
    key = deps.keys("chart-compare", loc.language, ",".join(project_ids), version)
    png = await _cached_render(
        deps, key, slots, lambda: _render_comparison(deps, project_ids, snapshots, loc)
    )
    return Chart(png, version)


async def _cached_render(
    deps: Deps, key: str, slots: asyncio.Semaphore, render: Callable[[], Awaitable[bytes]]
) -> bytes:
    """The PNG kept at `key`, or rendered in one of the process's slots and kept there."""
    png = await _cached(deps, key)
    if png is not None:
        return png
    try:
        async with asyncio.timeout(_SLOT_WAIT_S):
            await slots.acquire()
    except TimeoutError:
        raise ChartBusy(key) from None
    try:
        png = await _cached(deps, key)  # drawn by another request while this one waited
        if png is None:
            png = await render()
            try:
                await deps.redis.set(key, png, ex=_CACHE_TTL_S)
            except RedisError as exc:
                log.warning("chart cache unavailable: %s", type(exc).__name__)
    finally:
        slots.release()
    return png


async def _cached(deps: Deps, key: str) -> bytes | None:
    try:
        value: Any = await deps.redis.get(key)
    except RedisError as exc:
        log.warning("chart cache unavailable: %s", type(exc).__name__)
        return None
    return bytes(value) if value else None


def _history(result: Any) -> list[tuple[int, float]]:
    history = result.get("price_history") if isinstance(result, dict) else None
    try:
        return [(int(t), float(p)) for t, p in history or []]
    except (TypeError, ValueError):
        return []


async def _render_snapshot(deps: Deps, project_id: str, snapshot_id: int) -> bytes:
    from tools.resolve import get_project

    result = await deps.db.fetchval(
        "SELECT result FROM analysis_snapshots WHERE id = $1", snapshot_id
    )
    points = _history(result)
    if len(points) < 2:
        raise NoChart(project_id)
    project = await get_project(deps, project_id)
    # the answer's own figures from the same snapshot, so chart and text agree
    price, change = result.get("price_usd"), result.get("change_24h_pct")
    return await asyncio.to_thread(
        render_price_chart,
        project.display if project else project_id,
        points,
        price_usd=float(price) if isinstance(price, int | float) else None,
        change_24h_pct=float(change) if isinstance(change, int | float) else None,
    )


async def _render_comparison(
    deps: Deps, project_ids: Sequence[str], snapshots: dict[str, int], loc: Localizer
) -> bytes:
    from tools.resolve import get_project

    rows = await deps.db.fetch(
        "SELECT id, result FROM analysis_snapshots WHERE id = ANY($1)",
        [snapshots[p] for p in project_ids],
    )
    by_id = {int(r["id"]): r["result"] for r in rows}
    series: dict[str, list[tuple[int, float]]] = {}
    for project_id in project_ids:
        project = await get_project(deps, project_id)
        series[project.display if project else project_id] = _history(
            by_id.get(snapshots[project_id])
        )
    drawable = normalised_series(series)
    if len(drawable) < 2:
        short = [p for p, label in zip(project_ids, series, strict=False) if label not in drawable]
        raise NoChart(*(short or project_ids))
    return await asyncio.to_thread(render_price_overlay, overlay_title(series, loc), series)


def period_label(first_ms: int, last_ms: int) -> str:
    """'24 h', '7 d', '90 d', '1 y' — the span the chart's change is measured over."""
    days = (last_ms - first_ms) / 86_400_000
    if days < 1.5:
        return f"{max(1, round(days * 24))} h"
    if 350 <= days <= 380:
        return "1 y"
    return f"{round(days)} d"


def chart_title(
    title: str,
    points: Sequence[tuple[int, float]],
    *,
    price_usd: float | None = None,
    change_24h_pct: float | None = None,
) -> str:
    """The title's figures: the answer's own price and 24 h change when given (so chart and
    text agree), then the change over the chart's period, with that period named."""
    first, last = points[0], points[-1]
    period_change = (last[1] / first[1] - 1) * 100 if first[1] else 0.0
    parts = [title, _usd(price_usd if price_usd is not None else last[1])]
    if change_24h_pct is not None:
        parts.append(f"{change_24h_pct:+.1f}% 24h")
    parts.append(f"{period_change:+.1f}% over {period_label(first[0], last[0])}")
    return "  ·  ".join(parts)


def render_price_chart(
    title: str,
    points: Sequence[tuple[int, float]],
    *,
    price_usd: float | None = None,
    change_24h_pct: float | None = None,
    width_px: int = 640,
    height_px: int = 320,
) -> bytes:
    """A line chart of (epoch ms, USD) points as PNG bytes; raises ValueError with < 2 points.

    The title names the period its change covers; the date axis carries the year."""
    figure = price_figure(
        title,
        points,
        price_usd=price_usd,
        change_24h_pct=change_24h_pct,
        width_px=width_px,
        height_px=height_px,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def price_figure(
    title: str,
    points: Sequence[tuple[int, float]],
    *,
    price_usd: float | None = None,
    change_24h_pct: float | None = None,
    width_px: int = 640,
    height_px: int = 320,
) -> Any:
    """The chart as a matplotlib Figure (what `render_price_chart` saves)."""
    if len(points) < 2:
        raise ValueError("a chart needs at least two price points")
    # Imported here: matplotlib is slow to import and only chart requests need it.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    times = [datetime.fromtimestamp(ms / 1000, tz=UTC) for ms, _ in points]
    prices = [price for _, price in points]
    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    axes = figure.add_subplot()
    rising = prices[-1] >= prices[0]
    color = "#2f9e44" if rising else "#e03131"
    # matplotlib plots datetimes through its units registry; its stubs list only numbers
    axes.plot(times, prices, color=color, linewidth=1.6)  # type: ignore[arg-type]
    axes.fill_between(times, prices, min(prices), color=color, alpha=0.08)  # type: ignore[arg-type]
    axes.set_title(
        chart_title(title, points, price_usd=price_usd, change_24h_pct=change_24h_pct),
        fontsize=10,
        loc="left",
    )
    axes.grid(True, alpha=0.25)
    span_days = (points[-1][0] - points[0][0]) / 86_400_000
    _date_ticks(axes, span_days)
    axes.yaxis.set_major_formatter(lambda value, _: _usd(value))
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout()
    return figure


def _usd(value: float) -> str:
    if value >= 1000:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.6g}"


def render_change_bars(
    title: str, bars: Sequence[tuple[str, float]], *, width_px: int = 640, height_px: int = 360
) -> bytes:
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
        axes.annotate(
            f"{value:+.1f}%",
            (value, y),
            xytext=(3 if value >= 0 else -3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            ha="left" if value >= 0 else "right",
        )
    axes.set_title(title, fontsize=11, loc="left")
    axes.grid(True, axis="x", alpha=0.25)
    axes.xaxis.set_major_formatter(lambda value, _: f"{value:+.0f}%")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def normalised_series(
    series: Mapping[str, Sequence[tuple[int, float]]],
) -> dict[str, list[tuple[int, float]]]:
    """Each series rebased to 100 at the first time every series has a price, from then on,
    so projects of very different prices can share one axis (a comparison's chart)."""
    usable = {label: [(t, p) for t, p in points if p > 0] for label, points in series.items()}
    usable = {label: points for label, points in usable.items() if len(points) >= 2}
    if not usable:
        return {}
    start = max(points[0][0] for points in usable.values())
    out: dict[str, list[tuple[int, float]]] = {}
    for label, points in usable.items():
        # the last price at or before the common start is the base
        before = [p for t, p in points if t <= start]
        base = before[-1] if before else points[0][1]
        rebased = [(t, p / base * 100) for t, p in points if t >= start]
        if len(rebased) >= 2:
            out[label] = rebased
    return out


OVERLAY_COLORS = ("#1c7ed6", "#f08c00", "#7048e8")


def render_price_overlay(
    title: str,
    series: Mapping[str, Sequence[tuple[int, float]]],
    *,
    width_px: int = 640,
    height_px: int = 320,
) -> bytes:
    """The projects' prices normalised to 100 at a common start, one line each, as PNG."""
    rebased = normalised_series(series)
    if len(rebased) < 2:
        raise ValueError("an overlay needs at least two price series with two points each")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    axes = figure.add_subplot()
    for i, (label, points) in enumerate(rebased.items()):
        times = [datetime.fromtimestamp(ms / 1000, tz=UTC) for ms, _ in points]
        last = points[-1][1]
        values = [p for _, p in points]
        color = OVERLAY_COLORS[i % len(OVERLAY_COLORS)]
        legend = f"{label} ({last - 100:+.0f}%)"
        # datetimes through matplotlib's units registry (its stubs list only numbers)
        axes.plot(times, values, linewidth=1.6, color=color, label=legend)  # type: ignore[arg-type]
    axes.axhline(100, color="#868e96", linewidth=0.8)
    axes.set_title(title, fontsize=10, loc="left")
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    axes.grid(True, alpha=0.25)
    first = min(points[0][0] for points in rebased.values())
    last_t = max(points[-1][0] for points in rebased.values())
    span_days = (last_t - first) / 86_400_000
    _date_ticks(axes, span_days)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _date_ticks(axes: Axes, span_days: float) -> None:
    """At most six date ticks, with the year alone once the chart spans more than two months."""
    import matplotlib.dates as mdates

    # matplotlib.dates has no annotations: its locator and formatter are untyped calls
    locator = mdates.AutoDateLocator(maxticks=6)  # type: ignore[no-untyped-call]
    date_format = "%b %Y" if span_days > 60 else "%d %b %Y"
    formatter = mdates.DateFormatter(date_format)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(formatter)


def overlay_title(
    series: Mapping[str, Sequence[tuple[int, float]]], loc: Localizer = ENGLISH
) -> str:
    """'Solana (SOL) vs Ethereum (ETH): price since 2026-03-01 (start = 100)'."""
    rebased = normalised_series(series)
    names = " vs ".join(rebased or series)
    if not rebased:
        return names
    start = datetime.fromtimestamp(min(p[0][0] for p in rebased.values()) / 1000, tz=UTC)
    return loc._("{names}: price since {date} (start = 100)").format(
        names=names, date=loc.date(start)
    )


def answer_overlay(
    projects: Sequence[Project],
    histories: Mapping[str, Sequence[tuple[int, float]]],
    loc: Localizer = ENGLISH,
) -> bytes | None:
    """A comparison answer's chart drawn from its own price histories (what the bots send);
    None when fewer than two of its projects have a price history to draw."""
    series = {p.display: list(histories.get(p.id, [])) for p in projects}
    if len(normalised_series(series)) < 2:
        return None
    return render_price_overlay(overlay_title(series, loc), series)


COMPARISON_CAPTION = N_("{names}: prices normalised to 100 at a common start")


def comparison_caption(projects: Sequence[Project], loc: Localizer = ENGLISH) -> str:
    """The caption under a comparison's chart in the chats."""
    return loc._(COMPARISON_CAPTION).format(names=" vs ".join(p.display for p in projects))
