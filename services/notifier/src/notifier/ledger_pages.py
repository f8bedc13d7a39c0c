"""The ledger's side of paging: escalation steps and incidents, acknowledgements (by id or
``ACK <code>``) and the wrong-code throttle. Same conventions as ``notifier.ledger``."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import asyncpg

from notifier.ledger import COLUMNS


async def escalate_now(pool: asyncpg.Pool, notification_id: uuid.UUID, now: dt.datetime) -> None:
    """A page (or one of its escalations) could not be delivered: escalate its alert at once
    instead of waiting for the acknowledgement timeout."""
    await pool.execute(
        """
        UPDATE notifier.notifications SET next_escalation_at = $2
        WHERE notification_id = (
            SELECT COALESCE(root_id, notification_id) FROM notifier.notifications
            WHERE notification_id = $1)
          AND urgency = 'urgent' AND acknowledged_at IS NULL
          AND (next_escalation_at IS NULL OR next_escalation_at > $2)
        """,
        notification_id,
        now,
    )


@dataclass(frozen=True)
class Escalation:
    """One step of an alert's policy. ``incident``: the last reminder went unanswered too;
    ``reached`` then says whether any text of the alert was reported delivered."""

    root: asyncpg.Record
    step: int
    to_phone: str
    incident: bool = False
    reached: bool = False


async def escalate_due(
    pool: asyncpg.Pool,
    now: dt.datetime,
    wall: dt.datetime,
    *,
    interval: dt.timedelta,
    repeats: int,
    render: Callable[[asyncpg.Record, int], str],
    limit: int = 20,
    call: Callable[[asyncpg.Record], str] | None = None,
) -> list[Escalation]:
    """Unacknowledged urgent pages whose timer ran out: one new ledger row per step
    (``<key>:esc<step>``), to the backup phone (the on-call phone when there is none); the
    page itself becomes ``escalated`` (once a send of it is settled; one still being retried
    stays ``scheduled``). Step 1 is the hand-over to the backup, then up to ``repeats``
    reminders, ``interval`` apart; ``interval`` after the last one, an alert still
    unacknowledged is an incident (``incident_at``). Its texts are still retried.

    With ``call`` (the words a call says), step 1 also calls the on-call phone and step 2
    the backup (``<key>:call<step>``, channel ``voice``)."""
    done: list[Escalation] = []
    async with pool.acquire() as conn, conn.transaction():
        roots = await conn.fetch(
            f"""
            SELECT {COLUMNS} FROM notifier.notifications
            WHERE next_escalation_at <= $1 AND root_id IS NULL AND acknowledged_at IS NULL
            ORDER BY next_escalation_at LIMIT $2
            FOR UPDATE SKIP LOCKED
            """,  # noqa: S608 - a constant column list
            now,
            limit,
        )
        for root in roots:
            step = root["escalations_done"] + 1
            last = 1 + repeats
            if step > last:
                reached = await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM notifier.notifications"
                    " WHERE (notification_id = $1 OR root_id = $1)"
                    " AND (status = 'delivered' OR provider_status IN ('delivered', 'read')))",
                    root["notification_id"],
                )
                await conn.execute(
                    "UPDATE notifier.notifications SET next_escalation_at = NULL,"
                    " incident_at = COALESCE(incident_at, $2), updated_at = $3"
                    " WHERE notification_id = $1",
                    root["notification_id"],
                    now,
                    wall,
                )
                done.append(Escalation(root, step, "", incident=True, reached=bool(reached)))
                continue
            to_phone = root["backup_phone"] or root["to_phone"]
            body = render(root, step)
            esc_id = uuid.uuid5(root["notification_id"], f"esc{step}")
            await conn.execute(
                """
                INSERT INTO notifier.notifications (notification_id, dedupe_key, patient_id,
                    kind, audience, urgency, to_phone, backup_phone, language, timezone, facts,
                    evidence, rule, body, ack_code, root_id, escalation_step, status,
                    created_at, scheduled_for, updated_at, team)
                SELECT $2, dedupe_key || ':esc' || $3::int, patient_id, kind, audience, urgency,
                    $4, backup_phone, language, timezone, facts, evidence, rule, $5, ack_code,
                    notification_id, $3, 'scheduled', $6, $6, $7, team
                FROM notifier.notifications WHERE notification_id = $1
                ON CONFLICT (dedupe_key) DO NOTHING
                """,
                root["notification_id"],
                esc_id,
                step,
                to_phone,
                body,
                now,
                wall,
            )
            await conn.execute(
                """
                UPDATE notifier.notifications SET escalations_done = $2,
                    status = CASE WHEN status IN ('sent', 'delivered', 'failed')
                        THEN 'escalated' ELSE status END,
                    next_escalation_at = $3::timestamptz + $4::interval,
                    updated_at = $5
                WHERE notification_id = $1
                """,
                root["notification_id"],
                step,
                now,
                interval,
                wall,
            )
            if call is not None and step in (1, 2):
                callee = root["to_phone"] if step == 1 else to_phone
                # The backup's call says what the on-call's said: its stored words serve.
                words = None
                if step == 2:
                    words = await conn.fetchval(
                        "SELECT body FROM notifier.notifications WHERE root_id = $1"
                        " AND channel = 'voice' AND escalation_step = 1",
                        root["notification_id"],
                    )
                await conn.execute(
                    """
                    INSERT INTO notifier.notifications (notification_id, dedupe_key,
                        patient_id, kind, audience, urgency, to_phone, backup_phone, language,
                        timezone, facts, evidence, rule, body, ack_code, root_id,
                        escalation_step, status, created_at, scheduled_for, updated_at, channel,
                        team)
                    SELECT $2, dedupe_key || ':call' || $3::int, patient_id, kind, audience,
                        urgency, $4, backup_phone, language, timezone, facts, evidence, rule,
                        $5, ack_code, notification_id, $3, 'scheduled', $6, $6, $7, 'voice', team
                    FROM notifier.notifications WHERE notification_id = $1
                    ON CONFLICT (dedupe_key) DO NOTHING
                    """,
                    root["notification_id"],
                    uuid.uuid5(root["notification_id"], f"call{step}"),
                    step,
                    callee,
                    words if isinstance(words, str) else call(root),
                    now,
                    wall,
                )
            done.append(Escalation(root=root, step=step, to_phone=to_phone))
    return done


AckOutcome = Literal["ok", "not_found", "not_a_page"]


async def acknowledge(
    pool: asyncpg.Pool, notification_id: uuid.UUID, now: dt.datetime, wall: dt.datetime
) -> AckOutcome:
    """Acknowledge a care-team alert (any row of its escalation chain)."""
    row = await pool.fetchrow(
        "SELECT audience, COALESCE(root_id, notification_id) AS root"
        " FROM notifier.notifications WHERE notification_id = $1",
        notification_id,
    )
    if row is None:
        return "not_found"
    if row["audience"] != "care_team":
        return "not_a_page"
    await _ack_chain(pool, row["root"], now, wall)
    return "ok"


async def acknowledge_by_code(
    pool: asyncpg.Pool, code: str, from_phone: str, now: dt.datetime, wall: dt.datetime
) -> uuid.UUID | None:
    """``ACK <code>`` texted from the alert's on-call or backup phone; None if no match.
    Codes are unique among open alerts: an open one wins over older acknowledged ones."""
    root = await pool.fetchval(
        "SELECT notification_id FROM notifier.notifications WHERE root_id IS NULL"
        " AND ack_code = $1 AND audience = 'care_team' AND (to_phone = $2 OR backup_phone = $2)"
        " ORDER BY acknowledged_at IS NULL DESC, created_at DESC LIMIT 1",
        code.upper(),
        from_phone,
    )
    if not isinstance(root, uuid.UUID):
        return None
    await _ack_chain(pool, root, now, wall)
    return root


async def ack_failures_since(pool: asyncpg.Pool, from_phone: str, since: dt.datetime) -> int:
    """Wrong ACK codes from this phone since ``since`` (wall clock)."""
    n = await pool.fetchval(
        "SELECT count(*) FROM notifier.ack_failures WHERE from_phone = $1 AND at >= $2",
        from_phone,
        since,
    )
    return int(n or 0)


async def record_ack_failure(
    pool: asyncpg.Pool, from_phone: str, wall: dt.datetime, keep: dt.timedelta
) -> None:
    """Note a wrong ACK code, and forget this phone's ones older than ``keep``."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM notifier.ack_failures WHERE from_phone = $1 AND at < $2",
            from_phone,
            wall - keep,
        )
        await conn.execute(
            "INSERT INTO notifier.ack_failures (from_phone, at) VALUES ($1, $2)", from_phone, wall
        )


async def _ack_chain(
    pool: asyncpg.Pool, root: uuid.UUID, now: dt.datetime, wall: dt.datetime
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            UPDATE notifier.notifications SET acknowledged_at = COALESCE(acknowledged_at, $2),
                next_escalation_at = NULL,
                status = CASE
                    WHEN status IN ('sent', 'delivered', 'escalated', 'failed', 'scheduled')
                        AND root_id IS NULL THEN 'acknowledged'
                    WHEN status IN ('sent', 'delivered') THEN 'acknowledged'
                    WHEN status = 'scheduled' THEN 'suppressed'
                    ELSE status END,
                updated_at = $3
            WHERE notification_id = $1 OR root_id = $1
            """,
            root,
            now,
            wall,
        )
