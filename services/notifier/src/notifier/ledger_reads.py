"""The ledger read for the API and the console: a patient's notifications, where each
alert's page stands, and who owns a notification."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from notifier.ledger import COLUMNS
from shared.timefmt import utc_z


async def notification_owner(
    pool: asyncpg.Pool, notification_id: uuid.UUID
) -> tuple[str | None, str] | None:
    """The patient and care team of a notification; ``None`` if there is none."""
    row = await pool.fetchrow(
        "SELECT patient_id, team FROM notifier.notifications WHERE notification_id = $1",
        notification_id,
    )
    return (row["patient_id"], row["team"]) if row is not None else None


def _iso(value: dt.datetime | None) -> str | None:
    return utc_z(value) if value else None


async def for_patient(pool: asyncpg.Pool, patient_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM notifier.notifications WHERE patient_id = $1"  # noqa: S608
        " ORDER BY created_at, escalation_step, notification_id",
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


async def page_statuses(
    pool: asyncpg.Pool, ids: list[uuid.UUID], teams: list[str] | None
) -> list[dict[str, Any]]:
    """Where each care-team alert's page stands (the console's worklist column), for the
    alerts of ``teams`` (``None``: every team)."""
    rows = await pool.fetch(
        "SELECT notification_id, kind, status, urgency, sent_at, acknowledged_at,"
        " escalations_done FROM notifier.notifications"
        " WHERE notification_id = ANY($1::uuid[]) AND audience = 'care_team' AND root_id IS NULL"
        " AND ($2::text[] IS NULL OR team = ANY($2::text[]))",
        ids,
        teams,
    )
    return [
        {
            "notification_id": str(r["notification_id"]),
            "kind": r["kind"],
            "status": r["status"],
            "urgency": r["urgency"],
            "sent_at": _iso(r["sent_at"]),
            "acknowledged_at": _iso(r["acknowledged_at"]),
            "escalations": r["escalations_done"],
        }
        for r in rows
    ]
