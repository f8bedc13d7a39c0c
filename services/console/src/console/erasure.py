"""The console's part of an erasure: its projection's rows for the patient, then a report
on ``erasure-events.v1`` (store ``console``). Idempotent (a redelivered ``patient.erased``
deletes nothing more and reports again)."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.crypto import EventCodec
from shared.events import ErasureProgressed, ErasureProgressedPayload, PatientErased
from shared.kafka import publish
from shared.topics import ERASURE_EVENTS


async def delete_patient(conn: asyncpg.Connection, patient_id: str) -> int:
    removed = 0
    for table in ("reports", "alerts", "patients"):
        rows = await conn.fetch(
            f"DELETE FROM console.{table} WHERE patient_id = $1 RETURNING 1",  # noqa: S608 - fixed names
            patient_id,
        )
        removed += len(rows)
    return removed


async def report(
    producer: AIOKafkaProducer,
    codec: EventCodec | None,
    event: PatientErased,
    removed: int,
    now: dt.datetime,
) -> None:
    progress = ErasureProgressed(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"erasure:{event.event_id}:console"),
        occurred_at=now,
        recorded_at=now,
        patient_id=event.patient_id,
        source="console",
        payload=ErasureProgressedPayload(
            erasure_id=event.event_id, store="console", outcome="done", removed=removed
        ),
    )
    await publish(producer, ERASURE_EVENTS, progress, codec=codec)
