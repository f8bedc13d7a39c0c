"""The assessor's read model in PostgreSQL (schema ``assessor``)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from assessor.rules import PatientState, alerts_view, day_number, phase_of


def recovery_view(state: PatientState) -> dict[str, Any] | None:
    """The contract's recovery document for one patient, or None before enrollment."""
    profile = state.profile
    if profile is None or state.stream_time is None:
        return None
    graded = [r for r in state.reports if r.severity is not None]
    return {
        "patient_id": state.patient_id,
        "phase": phase_of(state),
        "day": day_number(profile.surgery_date, state.stream_time, profile.timezone),
        "stream_time": state.stream_time.isoformat().replace("+00:00", "Z"),
        "baseline_severity": profile.baseline_severity,
        "latest_severity": graded[-1].severity if graded else None,
        "reports": [
            {
                "event_id": str(r.event_id),
                "occurred_at": r.occurred_at.isoformat().replace("+00:00", "Z"),
                "day": day_number(profile.surgery_date, r.occurred_at, profile.timezone),
                "severity": r.severity,
            }
            for r in state.reports
        ],
        "alerts": alerts_view(state),
    }


async def save(pool: asyncpg.Pool, view: dict[str, Any]) -> None:
    await pool.execute(
        """
        INSERT INTO assessor.recovery (patient_id, phase, day, stream_time, baseline_severity,
            latest_severity, reports, alerts, updated_at)
        VALUES ($1, $2, $3, $4::text::timestamptz, $5, $6, $7::jsonb, $8::jsonb, now())
        ON CONFLICT (patient_id) DO UPDATE SET phase = EXCLUDED.phase, day = EXCLUDED.day,
            stream_time = EXCLUDED.stream_time, baseline_severity = EXCLUDED.baseline_severity,
            latest_severity = EXCLUDED.latest_severity, reports = EXCLUDED.reports,
            alerts = EXCLUDED.alerts, updated_at = now()
        """,
        view["patient_id"],
        view["phase"],
        view["day"],
        view["stream_time"],
        view["baseline_severity"],
        view["latest_severity"],
        json.dumps(view["reports"]),
        json.dumps(view["alerts"]),
    )


async def load(pool: asyncpg.Pool, patient_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT patient_id, phase, day, stream_time, baseline_severity, latest_severity,"
        " reports, alerts FROM assessor.recovery WHERE patient_id = $1",
        patient_id,
    )
    if row is None:
        return None
    return {
        "patient_id": row["patient_id"],
        "phase": row["phase"],
        "day": row["day"],
        "stream_time": row["stream_time"].isoformat().replace("+00:00", "Z"),
        "baseline_severity": row["baseline_severity"],
        "latest_severity": row["latest_severity"],
        "reports": json.loads(row["reports"]),
        "alerts": json.loads(row["alerts"]),
    }
