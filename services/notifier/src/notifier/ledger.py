"""The notifier's ledger in PostgreSQL (schema ``notifier``): record, claim, settle."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import asyncpg

from shared.events import SendNotification

COLUMNS = (
    "notification_id, kind, audience, to_phone, status, dedupe_key, created_at, scheduled_for,"
    " sent_at, provider_sid, body, attempts, patient_id, urgency"
)


async def record(pool: asyncpg.Pool, event: SendNotification, body: str, now: dt.datetime) -> bool:
    """Store a decision once per dedupe key; False when it was already there."""
    p = event.payload
    inserted = await pool.fetchval(
        """
        INSERT INTO notifier.notifications (notification_id, dedupe_key, patient_id, kind,
            audience, urgency, to_phone, language, timezone, facts, evidence, rule, body,
            status, created_at, scheduled_for, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12, $13,
            'scheduled', $14, $15, $14)
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING true
        """,
        event.event_id,
        p.dedupe_key,
        event.patient_id,
        p.kind,
        p.audience,
        p.urgency,
        p.to,
        p.language,
        p.timezone,
        json.dumps(p.facts),
        json.dumps([str(e) for e in p.evidence]),
        p.rule,
        body,
        now,
        p.due_at,
    )
    return bool(inserted)


async def claim_due(pool: asyncpg.Pool, now: dt.datetime, limit: int) -> list[asyncpg.Record]:
    """Move up to ``limit`` due rows to ``sending``; replicas never claim the same row."""
    return list(
        await pool.fetch(
            f"""
            WITH due AS (
                SELECT notification_id FROM notifier.notifications
                WHERE status = 'scheduled' AND scheduled_for <= $1
                ORDER BY urgency DESC, scheduled_for
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            )
            UPDATE notifier.notifications n
            SET status = 'sending', attempts = n.attempts + 1, updated_at = $1
            FROM due WHERE n.notification_id = due.notification_id
            RETURNING {", ".join("n." + c.strip() for c in COLUMNS.split(","))}
            """,  # noqa: S608 - a constant column list
            now,
            limit,
        )
    )


async def mark_sent(
    pool: asyncpg.Pool, notification_id: uuid.UUID, sid: str, now: dt.datetime
) -> None:
    await pool.execute(
        "UPDATE notifier.notifications SET status = 'sent', provider_sid = $2, sent_at = $3,"
        " last_error = NULL, updated_at = $3 WHERE notification_id = $1 AND status = 'sending'",
        notification_id,
        sid,
        now,
    )


async def mark_failed(
    pool: asyncpg.Pool,
    notification_id: uuid.UUID,
    error: str,
    now: dt.datetime,
    status: str = "failed",
) -> None:
    await pool.execute(
        "UPDATE notifier.notifications SET status = $4, last_error = $2, updated_at = $3"
        " WHERE notification_id = $1",
        notification_id,
        error,
        now,
        status,
    )


async def reschedule(
    pool: asyncpg.Pool,
    notification_id: uuid.UUID,
    at: dt.datetime,
    error: str,
    now: dt.datetime,
) -> None:
    await pool.execute(
        "UPDATE notifier.notifications SET status = 'scheduled', scheduled_for = $2,"
        " last_error = $3, updated_at = $4 WHERE notification_id = $1 AND status = 'sending'",
        notification_id,
        at,
        error,
        now,
    )


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


async def for_patient(pool: asyncpg.Pool, patient_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM notifier.notifications WHERE patient_id = $1"  # noqa: S608
        " ORDER BY created_at, notification_id",
        patient_id,
    )
    return [
        {
            "notification_id": str(r["notification_id"]),
            "kind": r["kind"],
            "audience": r["audience"],
            "to": r["to_phone"],
            "status": r["status"],
            "dedupe_key": r["dedupe_key"],
            "created_at": _iso(r["created_at"]),
            "scheduled_for": _iso(r["scheduled_for"]),
            "sent_at": _iso(r["sent_at"]),
            "provider_sid": r["provider_sid"],
            "body": r["body"],
        }
        for r in rows
    ]


async def acknowledge(pool: asyncpg.Pool, notification_id: uuid.UUID, now: dt.datetime) -> str:
    """Acknowledge a care-team page: 'ok', 'not_found' or 'not_a_page'."""
    row = await pool.fetchrow(
        "UPDATE notifier.notifications SET status = 'acknowledged', updated_at = $2"
        " WHERE notification_id = $1 AND audience = 'care_team'"
        " RETURNING notification_id",
        notification_id,
        now,
    )
    if row is not None:
        return "ok"
    exists = await pool.fetchval(
        "SELECT 1 FROM notifier.notifications WHERE notification_id = $1", notification_id
    )
    return "not_a_page" if exists else "not_found"
