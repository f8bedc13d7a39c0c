"""The console's read model: each event from the topics applied to schema ``console``.

Every write is idempotent (upserts, inserts on a primary key, closes guarded by
``closed_at IS NULL``), so a batch redelivered after a crash changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg

from shared.events import (
    AlertAcknowledged,
    AlertClosed,
    AlertOwned,
    ClockAdvanced,
    ConsentChanged,
    Envelope,
    PatientEnrolled,
    PhaseChanged,
    SendNotification,
    SymptomReported,
)

#: The care-team alerts of the rules page (other decisions are patient texts).
ALERT_KINDS = frozenset(
    {"six_month_persistence", "worsening", "recurrence", "red_flag", "lost_to_follow_up"}
)
DEFAULT_TEAM = "default"


def team_of(event: PatientEnrolled) -> str:
    """The enrollment's ``care_team.team`` (the contract's default when it names none)."""
    team = getattr(event.payload.care_team, "team", None)
    return team if isinstance(team, str) and team else DEFAULT_TEAM


def name_of(event: PatientEnrolled) -> str | None:
    name = getattr(event.payload, "name", None)
    return name if isinstance(name, str) and name.strip() else None


async def apply(conn: asyncpg.Connection, event: Envelope) -> bool:
    """Apply one event; False when it is not one the console keeps."""
    if isinstance(event, PatientEnrolled):
        await _enrolled(conn, event)
    elif isinstance(event, ConsentChanged):
        await _consent(conn, event)
    elif isinstance(event, SymptomReported):
        p = event.payload
        await _report(conn, event.event_id, event.patient_id, event.occurred_at, "report",
                      p.channel, p.severity, p.note)  # fmt: skip
    elif isinstance(event, PhaseChanged):
        await conn.execute(
            "INSERT INTO console.patients (patient_id, phase, phase_day, updated_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (patient_id) DO UPDATE SET"
            " phase = EXCLUDED.phase, phase_day = EXCLUDED.phase_day,"
            " updated_at = EXCLUDED.updated_at",
            event.patient_id,
            event.payload.phase,
            event.payload.day,
            event.recorded_at,
        )
    elif isinstance(event, SendNotification):
        if event.payload.audience != "care_team" or event.payload.kind not in ALERT_KINDS:
            return False
        await _alert_raised(conn, event)
    elif isinstance(event, AlertOwned):
        await conn.execute(
            "UPDATE console.alerts SET owner_sub = $2, owner_name = $3, owned_at = $4"
            " WHERE alert_id = $1",
            event.payload.alert_id,
            event.payload.owner.sub,
            event.payload.owner.name,
            event.occurred_at,
        )
    elif isinstance(event, AlertAcknowledged):
        await conn.execute(
            "UPDATE console.alerts SET acknowledged_by = COALESCE(acknowledged_by, $2),"
            " acknowledged_at = COALESCE(acknowledged_at, $3) WHERE alert_id = $1",
            event.payload.alert_id,
            event.payload.by.name or event.payload.by.sub,
            event.occurred_at,
        )
    elif isinstance(event, AlertClosed):
        await _alert_closed(conn, event)
    elif isinstance(event, ClockAdvanced):
        await conn.execute(
            "INSERT INTO console.clock (id, now) VALUES (true, $1) ON CONFLICT (id)"
            " DO UPDATE SET now = GREATEST(console.clock.now, EXCLUDED.now)",
            event.payload.now,
        )
    else:
        return False
    return True


async def _enrolled(conn: asyncpg.Connection, event: PatientEnrolled) -> None:
    p = event.payload
    team = team_of(event)
    await conn.execute(
        """
        INSERT INTO console.patients (patient_id, team, name, enrollment, surgery_date,
            timezone, baseline_severity, sms_consent, consent_reason, enrolled_at, updated_at)
        VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, 'enrollment', $9, $9)
        ON CONFLICT (patient_id) DO UPDATE SET team = EXCLUDED.team, name = EXCLUDED.name,
            enrollment = EXCLUDED.enrollment, surgery_date = EXCLUDED.surgery_date,
            timezone = EXCLUDED.timezone, baseline_severity = EXCLUDED.baseline_severity,
            sms_consent = EXCLUDED.sms_consent, consent_reason = EXCLUDED.consent_reason,
            enrolled_at = COALESCE(console.patients.enrolled_at, EXCLUDED.enrolled_at),
            updated_at = EXCLUDED.updated_at
        """,
        event.patient_id,
        team,
        name_of(event),
        p.model_dump_json(),
        p.surgery_date,
        p.timezone,
        p.baseline_severity,
        p.sms_consent,
        event.recorded_at,
    )
    # An alert decided before the enrollment reached here, or a patient moved to another
    # team: the worklist follows the patient.
    await conn.execute(
        "UPDATE console.alerts SET team = $2 WHERE patient_id = $1 AND team IS DISTINCT FROM $2",
        event.patient_id,
        team,
    )


async def _consent(conn: asyncpg.Connection, event: ConsentChanged) -> None:
    p = event.payload
    await conn.execute(
        "UPDATE console.patients SET sms_consent = $2, consent_reason = $3, updated_at = $4"
        " WHERE patient_id = $1",
        event.patient_id,
        p.sms_consent,
        p.reason,
        event.recorded_at,
    )
    if event.source == "sms" and p.reason in ("stop", "start"):
        await _report(conn, event.event_id, event.patient_id, event.occurred_at, p.reason, "sms")


async def _report(
    conn: asyncpg.Connection,
    event_id: Any,
    patient_id: str,
    at: dt.datetime,
    kind: str,
    channel: str,
    severity: int | None = None,
    note: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO console.reports (event_id, patient_id, at, kind, channel, severity, note)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
        event_id,
        patient_id,
        at,
        kind,
        channel,
        severity,
        note,
    )


async def _alert_raised(conn: asyncpg.Connection, event: SendNotification) -> None:
    p = event.payload
    inserted = await conn.fetchval(
        """
        INSERT INTO console.alerts (alert_id, patient_id, team, kind, rule, urgency, evidence,
            raised_at)
        VALUES ($1, $2, (SELECT team FROM console.patients WHERE patient_id = $2), $3, $4, $5,
            $6::jsonb, $7)
        ON CONFLICT (alert_id) DO NOTHING
        RETURNING true
        """,
        event.event_id,
        event.patient_id,
        p.kind,
        p.rule,
        p.urgency,
        json.dumps([str(e) for e in p.evidence]),
        event.recorded_at,
    )
    if inserted:
        await conn.execute(
            "INSERT INTO console.patients (patient_id, open_alerts, updated_at)"
            " VALUES ($1, 1, $2) ON CONFLICT (patient_id)"
            " DO UPDATE SET open_alerts = console.patients.open_alerts + 1",
            event.patient_id,
            event.recorded_at,
        )


async def _alert_closed(conn: asyncpg.Connection, event: AlertClosed) -> None:
    p = event.payload
    closed = await conn.fetchval(
        "UPDATE console.alerts SET closed_at = $2, closed_by = $3, outcome = $4, note = $5"
        " WHERE alert_id = $1 AND closed_at IS NULL RETURNING patient_id",
        p.alert_id,
        event.occurred_at,
        p.by.name or p.by.sub,
        p.outcome,
        p.note,
    )
    if closed is not None:
        await conn.execute(
            "UPDATE console.patients SET open_alerts = GREATEST(0, open_alerts - 1)"
            " WHERE patient_id = $1",
            closed,
        )
