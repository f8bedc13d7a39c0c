"""Ingest's own tables: the patient registry and the simulated clock."""

from __future__ import annotations

import datetime as dt
import json

import asyncpg

from shared.events import PatientEnrolledPayload


class PhoneTaken(Exception):
    """The phone already belongs to another patient."""


async def upsert_patient(
    conn: asyncpg.Connection, patient_id: str, p: PatientEnrolledPayload, now: dt.datetime
) -> None:
    owner = await conn.fetchval("SELECT patient_id FROM ingest.patients WHERE phone = $1", p.phone)
    if owner is not None and owner != patient_id:
        raise PhoneTaken
    await conn.execute(
        """
        INSERT INTO ingest.patients (patient_id, phone, timezone, language, surgery_date,
            baseline_severity, care_team, sms_consent, enrolled_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $9)
        ON CONFLICT (patient_id) DO UPDATE SET
            phone = EXCLUDED.phone, timezone = EXCLUDED.timezone,
            language = EXCLUDED.language, surgery_date = EXCLUDED.surgery_date,
            baseline_severity = EXCLUDED.baseline_severity, care_team = EXCLUDED.care_team,
            sms_consent = EXCLUDED.sms_consent, updated_at = EXCLUDED.updated_at
        """,
        patient_id,
        p.phone,
        p.timezone,
        p.language,
        p.surgery_date,
        p.baseline_severity,
        json.dumps(p.care_team.model_dump(mode="json")),
        p.sms_consent,
        now,
    )


async def patient_exists(conn: asyncpg.Connection | asyncpg.Pool, patient_id: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM ingest.patients WHERE patient_id = $1", patient_id)
    return found is not None


async def simulated_now(conn: asyncpg.Connection | asyncpg.Pool) -> dt.datetime | None:
    value = await conn.fetchval("SELECT now FROM ingest.simulated_clock")
    assert value is None or isinstance(value, dt.datetime)
    return value


async def lock_clock(conn: asyncpg.Connection) -> dt.datetime | None:
    """Read the simulated clock with a row lock held until the transaction ends."""
    await conn.execute(
        "INSERT INTO ingest.simulated_clock (now) VALUES (NULL) ON CONFLICT DO NOTHING"
    )
    value = await conn.fetchval("SELECT now FROM ingest.simulated_clock FOR UPDATE")
    assert value is None or isinstance(value, dt.datetime)
    return value


async def set_clock(conn: asyncpg.Connection, now: dt.datetime) -> None:
    await conn.execute("UPDATE ingest.simulated_clock SET now = $1", now)
