"""Ingest's own tables (schema ``ingest``): the patient registry, the care-team phones,
idempotency keys and the simulated clock."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from ingest.inbound import Sender
from shared.events import PatientEnrolledPayload


class PhoneTaken(Exception):
    """The phone already belongs to another patient."""


class KeyConflict(Exception):
    """An idempotency key reused with a different request."""


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    media_type: str
    body: str


def fingerprint(value: Any) -> str:
    """A stable digest of a request's meaning (key order and spacing do not matter)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def upsert_patient(
    conn: asyncpg.Connection, patient_id: str, p: PatientEnrolledPayload, now: dt.datetime
) -> None:
    owner = await conn.fetchval(
        "SELECT patient_id FROM ingest.patients WHERE phone = $1 FOR UPDATE", p.phone
    )
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
    await conn.execute("DELETE FROM ingest.care_team_phones WHERE patient_id = $1", patient_id)
    phones = [("on_call", p.care_team.on_call), ("backup", p.care_team.backup)]
    await conn.executemany(
        "INSERT INTO ingest.care_team_phones (patient_id, role, phone) VALUES ($1, $2, $3)",
        [(patient_id, role, phone) for role, phone in phones if phone],
    )


async def patient_team(conn: asyncpg.Connection | asyncpg.Pool, patient_id: str) -> str | None:
    """The patient's care team; ``None`` for an unknown patient."""
    team = await conn.fetchval(
        "SELECT COALESCE(care_team->>'team', 'default') FROM ingest.patients WHERE patient_id = $1",
        patient_id,
    )
    return str(team) if team is not None else None


async def patient_exists(conn: asyncpg.Connection | asyncpg.Pool, patient_id: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM ingest.patients WHERE patient_id = $1", patient_id)
    return found is not None


async def sender(conn: asyncpg.Connection, phone: str) -> Sender:
    """Who a phone belongs to (a patient, a care-team member, both, or nobody)."""
    patient = await conn.fetchrow(
        "SELECT patient_id, language, sms_consent FROM ingest.patients WHERE phone = $1", phone
    )
    covers = await conn.fetch(
        "SELECT DISTINCT patient_id FROM ingest.care_team_phones WHERE phone = $1 "
        "ORDER BY patient_id",
        phone,
    )
    covered = tuple(str(r["patient_id"]) for r in covers)
    if patient is None:
        return Sender(covers=covered)
    return Sender(
        patient_id=patient["patient_id"],
        language="es" if patient["language"] == "es" else "en",
        sms_consent=patient["sms_consent"],
        covers=covered,
    )


async def set_consent(
    conn: asyncpg.Connection, patient_id: str, consent: bool, now: dt.datetime
) -> None:
    await conn.execute(
        "UPDATE ingest.patients SET sms_consent = $2, updated_at = $3 WHERE patient_id = $1",
        patient_id,
        consent,
        now,
    )


async def claim_key(
    conn: asyncpg.Connection, scope: str, key: str, fingerprint_: str
) -> StoredAnswer | None:
    """Take an idempotency key for this transaction, or return the answer already given.

    The insert waits for a concurrent transaction holding the same key; once that one
    commits, its answer is returned here (and if it rolled back, this one takes the key).
    Raises ``KeyConflict`` when the key was used with a different request.
    """
    taken = await conn.fetchval(
        """
        INSERT INTO ingest.idempotency_keys (scope, key, fingerprint) VALUES ($1, $2, $3)
        ON CONFLICT DO NOTHING RETURNING true
        """,
        scope,
        key,
        fingerprint_,
    )
    if taken:
        return None
    row = await conn.fetchrow(
        "SELECT fingerprint, status_code, media_type, body FROM ingest.idempotency_keys "
        "WHERE scope = $1 AND key = $2",
        scope,
        key,
    )
    assert row is not None
    assert row["status_code"] is not None
    if row["fingerprint"] != fingerprint_:
        raise KeyConflict
    return StoredAnswer(row["status_code"], row["media_type"], row["body"])


async def store_answer(
    conn: asyncpg.Connection, scope: str, key: str, answer: StoredAnswer
) -> None:
    await conn.execute(
        "UPDATE ingest.idempotency_keys SET status_code = $3, media_type = $4, body = $5 "
        "WHERE scope = $1 AND key = $2",
        scope,
        key,
        answer.status_code,
        answer.media_type,
        answer.body,
    )


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
