"""The notifier's ledger in PostgreSQL (schema ``notifier``): record, claim, settle; consent,
care teams and the simulated clock (paging's rows: ``ledger_pages``; reads: ``ledger_reads``).

Every function takes the times it needs: ``now`` is the business clock (simulated or wall),
``wall`` is the real time (leases, retry back-off, provider call times).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from typing import Any, Literal

import asyncpg

from shared.events import SendNotification

COLUMNS = (
    "notification_id, kind, audience, to_phone, status, dedupe_key, created_at, scheduled_for,"
    " sent_at, provider_sid, body, attempts, patient_id, urgency, language, facts, rule,"
    " backup_phone, ack_code, root_id, escalation_step, escalations_done, verify_before_send,"
    " call_started_at, provider_status, error_code, channel"
)
_N_COLUMNS = ", ".join("n." + c.strip() for c in COLUMNS.split(","))

#: Unambiguous characters for acknowledgement codes (no 0/O, 1/I/L, 5/S, 2/Z).
ACK_ALPHABET = "346789ABCDEFGHJKMNPQRTUVWXY"

#: Provider statuses by how far along they are; 3 is final (the first final one wins).
PROVIDER_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "read": 3,
    "undelivered": 3,
    "failed": 3,
    "canceled": 3,
}
#: What each provider status means for a ledger row (None: no change).
LEDGER_STATUS = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}


#: 27**6 (about 387 million) codes; unique only among open alerts, so they never run out.
ACK_CODE_LENGTH = 6


def new_ack_code() -> str:
    return "".join(secrets.choice(ACK_ALPHABET) for _ in range(ACK_CODE_LENGTH))


async def record(
    pool: asyncpg.Pool,
    event: SendNotification,
    body: str,
    now: dt.datetime,
    *,
    ack_code: str | None = None,
    escalate_at: dt.datetime | None = None,
) -> bool:
    """Store a decision once per dedupe key; False when it was already there. An urgent
    page's escalation timer starts here (``escalate_at``), whatever its delivery does."""
    p = event.payload
    inserted = await pool.fetchval(
        """
        INSERT INTO notifier.notifications (notification_id, dedupe_key, patient_id, kind,
            audience, urgency, to_phone, backup_phone, language, timezone, facts, evidence,
            rule, body, ack_code, status, created_at, scheduled_for, updated_at,
            next_escalation_at, team)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13, $14, $15,
            'scheduled', $16, $17, $16, $18, $19)
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
        p.backup_to,
        p.language,
        p.timezone,
        json.dumps(p.facts),
        json.dumps([str(e) for e in p.evidence]),
        p.rule,
        body,
        ack_code,
        now,
        p.due_at,
        escalate_at,
        p.team,
    )
    return bool(inserted)


async def exists(pool: asyncpg.Pool, dedupe_key: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT true FROM notifier.notifications WHERE dedupe_key = $1", dedupe_key
        )
    )


# --- dispatching -------------------------------------------------------------------------------


async def claim_due(
    pool: asyncpg.Pool, now: dt.datetime, wall: dt.datetime, lease: dt.timedelta, limit: int
) -> list[asyncpg.Record]:
    """Move up to ``limit`` due rows to ``sending`` under a lease; replicas never claim the
    same row, and a row whose lease ran out is reconciled, never simply re-claimed."""
    return list(
        await pool.fetch(
            f"""
            WITH due AS (
                SELECT notification_id FROM notifier.notifications
                WHERE status = 'scheduled' AND scheduled_for <= $1
                    AND (retry_at IS NULL OR retry_at <= $2)
                ORDER BY urgency DESC, scheduled_for
                LIMIT $4
                FOR UPDATE SKIP LOCKED
            )
            UPDATE notifier.notifications n
            SET status = 'sending', attempts = n.attempts + 1, lease_until = $2 + $3::interval,
                updated_at = $2
            FROM due WHERE n.notification_id = due.notification_id
            RETURNING {_N_COLUMNS}
            """,  # noqa: S608 - a constant column list
            now,
            wall,
            lease,
            limit,
        )
    )


async def claim_stale(
    pool: asyncpg.Pool, wall: dt.datetime, lease: dt.timedelta, limit: int
) -> list[asyncpg.Record]:
    """Rows left ``sending`` past their lease (a crash between the call and the record):
    take them for reconciliation under a fresh lease."""
    return list(
        await pool.fetch(
            f"""
            WITH stale AS (
                SELECT notification_id FROM notifier.notifications
                WHERE status = 'sending' AND (lease_until IS NULL OR lease_until < $1)
                ORDER BY lease_until NULLS FIRST
                LIMIT $3
                FOR UPDATE SKIP LOCKED
            )
            UPDATE notifier.notifications n
            SET lease_until = $1 + $2::interval, updated_at = $1
            FROM stale WHERE n.notification_id = stale.notification_id
            RETURNING {_N_COLUMNS}
            """,  # noqa: S608 - a constant column list
            wall,
            lease,
            limit,
        )
    )


async def has_prior_text(pool: asyncpg.Pool, to_phone: str, notification_id: uuid.UUID) -> bool:
    """Whether the service ever texted this phone before (anything handed to the provider)."""
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM notifier.notifications WHERE to_phone = $1"
            " AND audience = 'patient' AND notification_id <> $2"
            " AND (provider_sid IS NOT NULL OR call_started_at IS NOT NULL))",
            to_phone,
            notification_id,
        )
    )


async def begin_call(
    pool: asyncpg.Pool, notification_id: uuid.UUID, body: str, wall: dt.datetime
) -> None:
    """Write down exactly what is about to be sent, and when, before calling the provider:
    reconciliation matches on both."""
    await pool.execute(
        "UPDATE notifier.notifications SET body = $2, call_started_at = $3, updated_at = $3"
        " WHERE notification_id = $1 AND status = 'sending'",
        notification_id,
        body,
        wall,
    )


async def known_sids(pool: asyncpg.Pool, sids: list[str]) -> set[str]:
    rows = await pool.fetch(
        "SELECT provider_sid FROM notifier.notifications WHERE provider_sid = ANY($1::text[])",
        sids,
    )
    return {r["provider_sid"] for r in rows}


async def mark_sent(
    pool: asyncpg.Pool,
    notification_id: uuid.UUID,
    sid: str,
    now: dt.datetime,
    wall: dt.datetime,
    *,
    escalate_after: dt.timedelta | None = None,
) -> None:
    """Record the provider's SID; apply any status callback that arrived first; start the
    acknowledgement timer of an urgent page."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            UPDATE notifier.notifications SET provider_sid = $2,
                status = CASE WHEN status <> 'sending' THEN status
                    WHEN acknowledged_at IS NOT NULL THEN 'acknowledged'
                    WHEN escalations_done > 0 THEN 'escalated' ELSE 'sent' END,
                sent_at = COALESCE(sent_at, $3), last_error = NULL, lease_until = NULL,
                retry_at = NULL, verify_before_send = false, updated_at = $4,
                next_escalation_at = CASE
                    WHEN $5::interval IS NOT NULL AND root_id IS NULL
                        AND acknowledged_at IS NULL AND escalations_done = 0
                    THEN COALESCE(next_escalation_at, $3 + $5::interval)
                    ELSE next_escalation_at END
            WHERE notification_id = $1
            """,
            notification_id,
            sid,
            now,
            wall,
            escalate_after,
        )
        row = await conn.fetchrow(
            "SELECT status, error_code FROM notifier.provider_statuses WHERE message_sid = $1",
            sid,
        )
        if row is not None:
            await _apply_provider_status(conn, sid, row["status"], row["error_code"], wall)


async def mark_failed(
    pool: asyncpg.Pool,
    notification_id: uuid.UUID,
    error: str,
    wall: dt.datetime,
    *,
    status: Literal["failed", "suppressed"] = "failed",
    error_code: int | None = None,
) -> None:
    await pool.execute(
        "UPDATE notifier.notifications SET status = $4, last_error = $2, error_code = $5,"
        " lease_until = NULL, updated_at = $3 WHERE notification_id = $1"
        " AND status IN ('scheduled', 'sending')",
        notification_id,
        error,
        wall,
        status,
        error_code,
    )


async def reschedule(
    pool: asyncpg.Pool,
    notification_id: uuid.UUID,
    retry_at: dt.datetime,
    error: str,
    wall: dt.datetime,
    *,
    verify_before_send: bool,
) -> None:
    """Back to ``scheduled``, not before ``retry_at`` (wall clock); with
    ``verify_before_send`` the next attempt first looks the message up at the provider. A
    page acknowledged meanwhile is not tried again."""
    await pool.execute(
        "UPDATE notifier.notifications SET status = CASE WHEN acknowledged_at IS NULL"
        " THEN 'scheduled' ELSE 'suppressed' END, retry_at = $2, last_error = $3,"
        " verify_before_send = verify_before_send OR $5, lease_until = NULL, updated_at = $4"
        " WHERE notification_id = $1 AND status = 'sending'",
        notification_id,
        retry_at,
        error,
        wall,
        verify_before_send,
    )


# --- provider status callbacks -------------------------------------------------------------


async def apply_provider_status(
    pool: asyncpg.Pool, sid: str, status: str, error_code: int | None, wall: dt.datetime
) -> asyncpg.Record | None:
    """Move a message's status forward only, whatever order callbacks arrive in. Returns the
    ledger row it changed (None if none did, or the message is not ours yet)."""
    rank = PROVIDER_RANK.get(status)
    if rank is None:
        return None
    async with pool.acquire() as conn, conn.transaction():
        moved = await conn.fetchval(
            """
            INSERT INTO notifier.provider_statuses (message_sid, status, rank, error_code,
                reported_at)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (message_sid) DO UPDATE
                SET status = EXCLUDED.status, rank = EXCLUDED.rank,
                    error_code = COALESCE(EXCLUDED.error_code, provider_statuses.error_code),
                    reported_at = EXCLUDED.reported_at
                WHERE provider_statuses.rank < 3 AND provider_statuses.rank < EXCLUDED.rank
            RETURNING true
            """,
            sid,
            status,
            rank,
            error_code,
            wall,
        )
        if not moved:
            return None
        return await _apply_provider_status(conn, sid, status, error_code, wall)


async def _apply_provider_status(
    conn: asyncpg.Connection, sid: str, status: str, error_code: int | None, wall: dt.datetime
) -> asyncpg.Record | None:
    target = LEDGER_STATUS.get(status)
    return await conn.fetchrow(
        """
        UPDATE notifier.notifications SET provider_status = $2,
            error_code = COALESCE($3, error_code),
            status = CASE
                WHEN status = 'sent' AND $4::text IN ('delivered', 'failed') THEN $4::text
                WHEN status = 'sending' AND $4::text IS NOT NULL THEN 'sent'
                ELSE status END,
            updated_at = $5
        WHERE provider_sid = $1
        RETURNING notification_id, status, audience, urgency, root_id, acknowledged_at,
            attempts, kind
        """,
        sid,
        status,
        error_code,
        target,
        wall,
    )


async def resend_undelivered_page(
    pool: asyncpg.Pool, notification_id: uuid.UUID, retry_at: dt.datetime, wall: dt.datetime
) -> bool:
    """A page text the carrier reported undelivered, its alert still open: back to
    ``scheduled`` for another attempt at ``retry_at`` (wall clock), as a new message."""
    return bool(
        await pool.fetchval(
            """
            UPDATE notifier.notifications SET status = 'scheduled', retry_at = $2,
                provider_sid = NULL, provider_status = NULL, call_started_at = NULL,
                verify_before_send = false, last_error = 'undelivered', updated_at = $3
            WHERE notification_id = $1 AND status = 'failed' AND acknowledged_at IS NULL
                AND audience = 'care_team' AND urgency = 'urgent'
            RETURNING true
            """,
            notification_id,
            retry_at,
            wall,
        )
    )


# --- consent ---------------------------------------------------------------------------------


async def set_consent(
    pool: asyncpg.Pool,
    patient_id: str,
    consent: bool,
    reason: str,
    now: dt.datetime,
    event_id: uuid.UUID | None,
    *,
    only_if_absent: bool = False,
) -> bool:
    """Record a patient's consent; with ``only_if_absent`` (an enrollment) only when none is
    on record yet. True when it was written."""
    written = await pool.fetchval(
        """
        INSERT INTO notifier.suppressions (patient_id, suppressed, reason, changed_at, event_id)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (patient_id) DO UPDATE SET suppressed = EXCLUDED.suppressed,
            reason = EXCLUDED.reason, changed_at = EXCLUDED.changed_at,
            event_id = EXCLUDED.event_id
        WHERE NOT $6
        RETURNING true
        """,
        patient_id,
        not consent,
        reason,
        now,
        event_id,
        only_if_absent,
    )
    return bool(written)


async def is_suppressed(pool: asyncpg.Pool, patient_id: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT suppressed FROM notifier.suppressions WHERE patient_id = $1", patient_id
        )
    )


# --- simulated clock --------------------------------------------------------------------------


async def load_clock(pool: asyncpg.Pool) -> dt.datetime | None:
    value = await pool.fetchval("SELECT now FROM notifier.clock WHERE id")
    return value if isinstance(value, dt.datetime) else None


async def advance_clock(pool: asyncpg.Pool, now: dt.datetime) -> dt.datetime:
    """The clock only moves forward; returns its value after this event."""
    value = await pool.fetchval(
        "INSERT INTO notifier.clock (id, now) VALUES (true, $1)"
        " ON CONFLICT (id) DO UPDATE SET now = GREATEST(clock.now, EXCLUDED.now)"
        " RETURNING now",
        now,
    )
    assert isinstance(value, dt.datetime)
    return value


async def set_team(pool: asyncpg.Pool, patient_id: str, team: str, now: dt.datetime) -> None:
    await pool.execute(
        "INSERT INTO notifier.patient_teams (patient_id, team, changed_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (patient_id) DO UPDATE SET team = EXCLUDED.team,"
        " changed_at = EXCLUDED.changed_at",
        patient_id,
        team,
        now,
    )


async def patient_team(pool: asyncpg.Pool, patient_id: str) -> str | None:
    """The patient's care team; ``None`` when the notifier knows nothing of the patient."""
    team = await pool.fetchval(
        "SELECT COALESCE((SELECT team FROM notifier.patient_teams WHERE patient_id = $1),"
        " (SELECT team FROM notifier.notifications WHERE patient_id = $1 LIMIT 1))",
        patient_id,
    )
    return str(team) if team is not None else None


def facts_of(row: asyncpg.Record) -> dict[str, Any]:
    """A row's ``facts`` (asyncpg hands ``jsonb`` over as text)."""
    raw = row["facts"]
    value = json.loads(raw) if isinstance(raw, str) else raw
    return dict(value) if isinstance(value, dict) else {}
