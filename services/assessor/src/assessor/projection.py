"""The assessor's read model in PostgreSQL (schema ``assessor``)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg

from assessor.domain import Decision, alerts_view, day_number
from assessor.timers import partition_of
from shared.timefmt import utc_z
from shared.topics import PATIENT_PARTITIONS


def recovery_view(decision: Decision) -> dict[str, Any] | None:
    """The contract's recovery document for one patient, or None before enrollment. The
    phase and the reports' days come with the decision (the rules computed them once)."""
    state = decision.state
    profile = state.profile
    if profile is None or state.stream_time is None:
        return None
    graded = [r for r in state.reports if r.severity is not None]
    return {
        "patient_id": state.patient_id,
        "phase": decision.phase,
        "day": day_number(profile.surgery_date, state.stream_time, profile.timezone),
        "stream_time": utc_z(state.stream_time),
        "baseline_severity": profile.baseline_severity,
        "latest_severity": graded[-1].severity if graded else None,
        "reports": [
            {
                "event_id": str(r.event_id),
                "occurred_at": utc_z(r.occurred_at),
                "day": day,
                "severity": r.severity,
            }
            for r, day in zip(state.reports, decision.report_days, strict=True)
        ],
        "alerts": alerts_view(state),
        "surgery_date": profile.surgery_date,
        "timezone": profile.timezone,
        "team": profile.care_team.team,
    }


_UPSERT = """
    INSERT INTO assessor.recovery (patient_id, phase, day, stream_time, baseline_severity,
        latest_severity, reports, alerts, surgery_date, timezone, team, updated_at)
    VALUES ($1, $2, $3, $4::text::timestamptz, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11,
        now())
    ON CONFLICT (patient_id) DO UPDATE SET phase = EXCLUDED.phase, day = EXCLUDED.day,
        stream_time = EXCLUDED.stream_time, baseline_severity = EXCLUDED.baseline_severity,
        latest_severity = EXCLUDED.latest_severity, reports = EXCLUDED.reports,
        alerts = EXCLUDED.alerts, surgery_date = EXCLUDED.surgery_date,
        timezone = EXCLUDED.timezone, team = EXCLUDED.team, updated_at = now()
"""


def _row(view: dict[str, Any]) -> tuple[Any, ...]:
    return (
        view["patient_id"],
        view["phase"],
        view["day"],
        view["stream_time"],
        view["baseline_severity"],
        view["latest_severity"],
        json.dumps(view["reports"]),
        json.dumps(view["alerts"]),
        view["surgery_date"],
        view["timezone"],
        view["team"],
    )


async def save_many(pool: asyncpg.Pool, views: list[dict[str, Any]]) -> None:
    """Upsert a batch of recovery documents in one transaction (one commit, one fsync).

    Rows are written in patient-id order, so two workers writing overlapping batches during
    a rebalance take their row locks in the same order and cannot deadlock.
    """
    if not views:
        return
    rows = [_row(v) for v in sorted(views, key=lambda v: str(v["patient_id"]))]
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(_UPSERT, rows)


async def save_clock(pool: asyncpg.Pool, partition: int, now: dt.datetime) -> None:
    """Record how far the clock has reached on a partition (never backwards)."""
    await pool.execute(
        "INSERT INTO assessor.clock (partition, now) VALUES ($1, $2)"
        " ON CONFLICT (partition) DO UPDATE SET now = GREATEST(assessor.clock.now, EXCLUDED.now)",
        partition,
        now,
    )


async def load(pool: asyncpg.Pool, patient_id: str) -> tuple[dict[str, Any], str] | None:
    """The recovery document as of now (stream time and day move with the clock), and the
    patient's care team."""
    row = await pool.fetchrow(
        "SELECT r.patient_id, r.phase, r.day, r.stream_time, r.baseline_severity,"
        " r.latest_severity, r.reports, r.alerts, r.surgery_date, r.timezone, r.team,"
        " c.now AS clock"
        " FROM assessor.recovery r LEFT JOIN assessor.clock c ON c.partition = $2"
        " WHERE r.patient_id = $1",
        patient_id,
        partition_of(patient_id.encode(), PATIENT_PARTITIONS),
    )
    if row is None:
        return None
    stream_time: dt.datetime = row["stream_time"]
    day: int = row["day"]
    if row["clock"] is not None and row["clock"] > stream_time:
        stream_time = row["clock"]
        if row["surgery_date"] is not None:
            day = day_number(row["surgery_date"], stream_time, row["timezone"])
    doc = {
        "patient_id": row["patient_id"],
        "phase": row["phase"],
        "day": day,
        "stream_time": utc_z(stream_time),
        "baseline_severity": row["baseline_severity"],
        "latest_severity": row["latest_severity"],
        "reports": json.loads(row["reports"]),
        "alerts": json.loads(row["alerts"]),
    }
    return doc, row["team"]
