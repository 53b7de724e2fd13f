"""Prometheus metrics of report delivery, read from the ledger when /metrics is scraped.

The ledger is shared by every worker process, so the numbers come from PostgreSQL rather than
from per-process counters: deliveries of the newest report per channel and state (pending,
sending, sent, failed, unknown), and messages sent in the last minute per channel (as a rate).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from chainlens.deps import Deps

log = logging.getLogger(__name__)
STATES = ("pending", "sending", "sent", "failed", "unknown")
CHANNELS = ("telegram", "discord", "email")
RATE_WINDOW_S = 60


@dataclass
class DeliverySnapshot:
    report_date: str | None = None
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    sent_last_window: dict[str, int] = field(default_factory=dict)


class DeliveryCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = DeliverySnapshot()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snapshot
        deliveries = GaugeMetricFamily(
            "chainlens_report_deliveries",
            "Deliveries of the newest daily report, per channel and state",
            labels=["report_date", "channel", "state"],
        )
        if snap.report_date is not None:
            for channel in CHANNELS:
                for state in STATES:
                    deliveries.add_metric(
                        [snap.report_date, channel, state], snap.counts.get((channel, state), 0)
                    )
        yield deliveries
        rate = GaugeMetricFamily(
            "chainlens_send_rate_per_second",
            f"Proactive messages sent per second over the last {RATE_WINDOW_S} s",
            labels=["channel"],
        )
        for channel in CHANNELS:
            rate.add_metric([channel], snap.sent_last_window.get(channel, 0) / RATE_WINDOW_S)
        yield rate


async def read_snapshot(deps: Deps) -> DeliverySnapshot:
    snap = DeliverySnapshot()
    newest = await deps.db.fetchval(
        "SELECT max(report_date) FROM daily_reports WHERE delivery_started_at IS NOT NULL"
    )
    if newest is not None:
        snap.report_date = newest.isoformat()
        for r in await deps.db.fetch(
            "SELECT channel, state, count(*)::int AS n FROM deliveries "
            "WHERE kind = 'report' AND ref = $1 GROUP BY channel, state",
            snap.report_date,
        ):
            snap.counts[(r["channel"], r["state"])] = r["n"]
    for r in await deps.db.fetch(
        "SELECT channel, count(*)::int AS n FROM deliveries WHERE state = 'sent' "
        "AND sent_at > now() - make_interval(secs => $1) GROUP BY channel",
        RATE_WINDOW_S,
    ):
        snap.sent_last_window[r["channel"]] = r["n"]
    return snap


async def refresh_delivery_metrics(
    deps: Deps, registry: CollectorRegistry, holder: dict[str, DeliveryCollector]
) -> None:
    """Register the collector once per registry and load fresh numbers into it."""
    collector = holder.get("collector")
    if collector is None:
        collector = holder["collector"] = DeliveryCollector()
        registry.register(collector)
    try:
        collector.snapshot = await read_snapshot(deps)
    except (asyncpg.PostgresError, OSError) as exc:  # keep serving the other metrics
        log.warning("delivery metrics unavailable: %s", exc)
