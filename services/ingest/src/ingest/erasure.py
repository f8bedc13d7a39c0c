"""Erasing a patient (GDPR Art. 17, a withdrawn enrollment, or retention), ingest's part.

``DELETE /v1/patients/{id}`` runs :func:`erase` in one transaction: the patient's data key
is destroyed (every copy of their data in Kafka becomes unreadable at once), ingest's rows
go (registry, care-team phones, outbox), an ``erasures`` row records the request, and
``patient.erased`` is published on the patient's stream, where every other store sees it
in order after the patient's last event and erases its own rows. Each store then reports on
``erasure-events.v1`` (:class:`ProgressReader` folds those into the row); the erasure is
``done`` once every store in ``ERASURE_STORES`` reported ``done``.

The request is idempotent: a second DELETE answers 202 with the first erasure's id. A
service that restarts mid-way reads ``patient.erased`` again (its offset was not committed)
and finishes; its deletions are idempotent.

Retention: ``recovery.phase_changed`` to ``monitoring_complete`` is remembered in
``completions``; :func:`due_for_retention` lists patients completed longer ago than
``RETENTION_DAYS_AFTER_COMPLETION`` by the service's clock (simulated or wall), and they
are erased by the same path with reason ``retention``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pydantic import ValidationError

from ingest import keys
from shared.crypto import EventCodec
from shared.events import (
    ErasureProgressed,
    ErasureReason,
    PatientErased,
    PatientErasedPayload,
    PhaseChanged,
    parse_event,
)
from shared.kafka import publish
from shared.kafka_security import client_options
from shared.logs import patient_ref
from shared.supervisor import beat
from shared.topics import ERASURE_EVENTS, PATIENT_EVENTS, RECOVERY_EVENTS

log = logging.getLogger(__name__)

DEFAULT_STORES = ("ingest", "assessor", "notifier", "provider", "console")


@dataclass(frozen=True)
class Started:
    erasure_id: uuid.UUID
    #: False: the patient was already being (or had been) erased; nothing new happened.
    new: bool


async def erase(
    conn: asyncpg.Connection,
    producer: AIOKafkaProducer,
    codec: EventCodec,
    keyring: keys.LocalKeyring,
    patient_id: str,
    *,
    reason: ErasureReason,
    requested_by: str,
    now: dt.datetime,
) -> Started | None:
    """Ingest's part of an erasure, in the caller's transaction (publishes before it
    commits, like every write of ingest). ``None``: no such patient, nor an erasure."""
    earlier = await conn.fetchval(
        "SELECT erasure_id FROM ingest.erasures WHERE patient_id = $1", patient_id
    )
    exists = await conn.fetchval(
        "SELECT 1 FROM ingest.patients WHERE patient_id = $1 FOR UPDATE", patient_id
    )
    if earlier is not None and exists is None:
        return Started(earlier, new=False)
    if exists is None:
        return None
    erasure_id = uuid.uuid4()
    removed = await keys.destroy(conn, patient_id)
    for statement in (
        "DELETE FROM ingest.care_team_phones WHERE patient_id = $1",
        "DELETE FROM ingest.outbox WHERE key = $1",
        "DELETE FROM ingest.completions WHERE patient_id = $1",
        "DELETE FROM ingest.patients WHERE patient_id = $1",
    ):
        removed += len(await conn.fetch(statement + " RETURNING 1", patient_id))
    ingest_result = {"outcome": "done", "removed": removed, "at": now.isoformat()}
    await conn.execute(
        "INSERT INTO ingest.erasures (patient_id, erasure_id, reason, requested_at, stores)"
        " VALUES ($1, $2, $3, $4, $5::jsonb)"
        " ON CONFLICT (patient_id) DO UPDATE SET erasure_id = EXCLUDED.erasure_id,"
        " reason = EXCLUDED.reason, requested_at = EXCLUDED.requested_at,"
        " completed_at = NULL, stores = EXCLUDED.stores",
        patient_id,
        erasure_id,
        reason,
        now,
        json.dumps({"ingest": ingest_result}),
    )
    event = PatientErased(
        event_id=erasure_id,
        occurred_at=now,
        recorded_at=now,
        patient_id=patient_id,
        source="api" if reason == "request" else "retention",
        payload=PatientErasedPayload(reason=reason, requested_by=requested_by),
    )
    await publish(producer, PATIENT_EVENTS, event, codec=codec)
    keyring.forget(patient_id)
    log.info(
        "patient erased in ingest; the other stores follow",
        extra={"patient": patient_ref(patient_id), "erasure_id": str(erasure_id)},
    )
    return Started(erasure_id, new=True)


async def status(
    pool: asyncpg.Pool | asyncpg.Connection, patient_id: str, expected: tuple[str, ...]
) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT erasure_id, reason, requested_at, completed_at, stores FROM ingest.erasures"
        " WHERE patient_id = $1",
        patient_id,
    )
    if row is None:
        return None
    stores = json.loads(row["stores"])
    for name in expected:
        stores.setdefault(name, {"outcome": "pending"})
    done = all(stores[name].get("outcome") == "done" for name in expected)
    return {
        "patient_id": patient_id,
        "erasure_id": str(row["erasure_id"]),
        "reason": row["reason"],
        "status": "done" if done else "pending",
        "requested_at": row["requested_at"].isoformat(),
        "completed_at": row["completed_at"].isoformat() if row["completed_at"] else None,
        "stores": stores,
    }


async def record_progress(
    pool: asyncpg.Pool, event: ErasureProgressed, expected: tuple[str, ...]
) -> bool:
    """Fold one store's report into the erasure's row (a report of an older erasure of the
    same patient id is ignored); True when this made the erasure complete."""
    p = event.payload
    result = {
        "outcome": p.outcome,
        "removed": p.removed,
        "at": event.occurred_at.isoformat(),
        **({"detail": p.detail} if p.detail else {}),
    }
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE ingest.erasures SET stores = stores || jsonb_build_object($3::text, $4::jsonb)"
            " WHERE patient_id = $1 AND erasure_id = $2 RETURNING stores, completed_at",
            event.patient_id,
            p.erasure_id,
            p.store,
            json.dumps(result),
        )
        if row is None or row["completed_at"] is not None:
            return False
        stores = json.loads(row["stores"])
        if all(stores.get(name, {}).get("outcome") == "done" for name in expected):
            await conn.execute(
                "UPDATE ingest.erasures SET completed_at = $2 WHERE patient_id = $1",
                event.patient_id,
                event.occurred_at,
            )
            log.info(
                "erasure complete in every store",
                extra={"patient": patient_ref(event.patient_id), "erasure_id": str(p.erasure_id)},
            )
            return True
    return False


async def record_completion(pool: asyncpg.Pool, event: PhaseChanged) -> None:
    if event.payload.phase != "monitoring_complete":
        return
    await pool.execute(
        "INSERT INTO ingest.completions (patient_id, completed_at)"
        " SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM ingest.patients WHERE patient_id = $1)"
        " ON CONFLICT (patient_id) DO UPDATE SET completed_at = EXCLUDED.completed_at",
        event.patient_id,
        event.occurred_at,
    )


async def due_for_retention(
    pool: asyncpg.Pool, now: dt.datetime, retention: dt.timedelta, limit: int = 100
) -> list[str]:
    rows = await pool.fetch(
        "SELECT patient_id FROM ingest.completions WHERE completed_at <= $1"
        " ORDER BY completed_at LIMIT $2",
        now - retention,
        limit,
    )
    return [str(r["patient_id"]) for r in rows]


def consumer(bootstrap: str, group: str = "ingest-erasure") -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        ERASURE_EVENTS,
        RECOVERY_EVENTS,
        bootstrap_servers=bootstrap,
        **client_options("ingest"),
        group_id=group,
        client_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


class ProgressReader:
    """Reads the stores' reports (and monitoring completions, for retention) into ingest's
    tables; offsets are committed only after the rows are written."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        kafka: AIOKafkaConsumer,
        expected: tuple[str, ...],
    ) -> None:
        self.pool = pool
        self.kafka = kafka
        self.expected = expected

    async def handle(self, raw: bytes | None) -> None:
        if raw is None:
            return  # a tombstone of the compacted recovery topic
        try:
            event = parse_event(raw)
        except (ValidationError, ValueError):
            log.warning("unreadable event on the erasure or recovery topic ignored")
            return
        if isinstance(event, ErasureProgressed):
            await record_progress(self.pool, event, self.expected)
        elif isinstance(event, PhaseChanged):
            await record_completion(self.pool, event)

    async def run_forever(self) -> None:
        await self.kafka.start()
        try:
            while True:
                beat()
                batches = await self.kafka.getmany(timeout_ms=500, max_records=200)
                for records in batches.values():
                    for rec in records:
                        await _until_done(functools.partial(self.handle, rec.value))
                if batches:
                    try:
                        await self.kafka.commit()
                    except (CommitFailedError, IllegalStateError) as exc:
                        log.warning("offset commit refused: %s", type(exc).__name__)
        finally:
            await self.kafka.stop()


async def _until_done(step: Callable[[], Awaitable[None]]) -> None:
    delay = 0.5
    while True:
        try:
            await step()
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as exc:
            log.warning("erasure progress not recorded, retrying: %s", type(exc).__name__)
            beat()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
