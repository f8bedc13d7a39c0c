"""The assessor's Prometheus metrics, and the cohort gauges computed from the read model."""

from __future__ import annotations

from typing import get_args

import asyncpg
from prometheus_client import Counter, Gauge, Histogram

from assessor.domain import ALERT_URGENCY, AlertKind, Phase
from shared.topics import CLOCK, PATIENT_EVENTS

EVENTS = Counter("assessor_events_total", "Events consumed", ["topic", "type", "outcome"])
DECISIONS_OUT = Counter("assessor_decisions_total", "Decisions emitted", ["kind"])
LATENCY = Histogram("assessor_event_seconds", "Time to process one event", ["type"])
ALERTS = Counter("assessor_alerts_total", "Care-team alerts raised", ["kind", "urgency"])
BATCH = Histogram(
    "assessor_batch_events",
    "Events per patient-events batch",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000),
)
DEAD = Counter("assessor_dead_letters_total", "Messages sent to the dead-letter topic", ["topic"])
# Computed from the read model on each scrape (every replica reports the whole cohort:
# aggregate with max(), not sum()). Month = whole months since surgery, capped at 12.
PHASES = Gauge("assessor_patients_by_phase", "Enrolled patients by current phase", ["phase"])
PHASES_BY_MONTH = Gauge(
    "assessor_patients_by_month",
    "Enrolled patients by month since surgery and current phase",
    ["month", "phase"],
)
ALL_PHASES = get_args(Phase)
for _topic in (PATIENT_EVENTS, CLOCK):
    EVENTS.labels(_topic, "unknown", "dead_letter")
    DEAD.labels(_topic)
for _kind in get_args(AlertKind):
    ALERTS.labels(_kind, ALERT_URGENCY[_kind])
for _type in ("patient.enrolled", "symptom.reported", "consent.changed", "clock.advanced"):
    LATENCY.labels(_type)
for _kind in ("reassurance", "checkin_prompt"):
    DECISIONS_OUT.labels(_kind)


async def refresh_cohort_metrics(pool: asyncpg.Pool) -> None:
    """Set the phase gauges from the projection; the day moves on with the partition clock."""
    rows = await pool.fetch(
        "SELECT r.phase, LEAST(12, FLOOR((r.day + GREATEST(0, EXTRACT(EPOCH FROM"
        " (COALESCE(c.now, r.stream_time) - r.stream_time)) / 86400)) / 30.4375))::int AS month,"
        " count(*) AS n FROM assessor.recovery r"
        " LEFT JOIN (SELECT max(now) AS now FROM assessor.clock) c ON true"
        " WHERE r.phase IS NOT NULL GROUP BY 1, 2"
    )
    by_phase = dict.fromkeys(ALL_PHASES, 0)
    PHASES_BY_MONTH.clear()
    for row in rows:
        by_phase[row["phase"]] = by_phase.get(row["phase"], 0) + row["n"]
        PHASES_BY_MONTH.labels(str(max(0, row["month"])), row["phase"]).set(row["n"])
    for phase, n in by_phase.items():
        PHASES.labels(phase).set(n)
