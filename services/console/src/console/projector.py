"""Feeds the read model from the topics: one consumer group, one transaction per batch,
offsets committed only after the batch is in PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from console import erasure, projection
from shared.crypto import KEY_SERVICE_DOWN, EventCodec, KeyUnavailable
from shared.events import PatientErased, parse_event
from shared.kafka_security import client_options
from shared.topics import CARE_TEAM_EVENTS, CLOCK, DECISIONS, PATIENT_EVENTS, RECOVERY_EVENTS

log = logging.getLogger(__name__)

TOPICS = (PATIENT_EVENTS, DECISIONS, RECOVERY_EVENTS, CARE_TEAM_EVENTS, CLOCK)
APPLIED = Counter("console_events_total", "Events consumed by the projection", ["outcome"])
LAST_BATCH = Gauge("console_projection_last_batch_timestamp", "When a batch was last applied")
for _outcome in ("applied", "ignored", "invalid"):
    APPLIED.labels(_outcome)


def consumer(bootstrap: str, group: str = "console") -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *TOPICS,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client_options("console"),
    )


async def apply_batch(
    pool: asyncpg.Pool,
    values: list[bytes | None],
    codec: EventCodec | None = None,
    producer: AIOKafkaProducer | None = None,
) -> int:
    """Apply raw events in order, in one transaction; returns how many were kept. With a
    ``codec`` the patient fields are opened (an erased patient's events are skipped); a
    ``patient.erased`` deletes the patient's rows and, after the commit, is reported."""
    events = []
    for raw in values:
        if raw is None:  # a tombstone (an erased patient's key on a compacted topic)
            APPLIED.labels("ignored").inc()
            continue
        try:
            events.append(await codec.decode(raw) if codec is not None else parse_event(raw))
        except KeyUnavailable:
            APPLIED.labels("ignored").inc()  # an erased patient's event
        except (ValidationError, ValueError):
            # The producing service dead-letters what it cannot read; here it is skipped.
            APPLIED.labels("invalid").inc()
    kept = 0
    erased: list[tuple[PatientErased, int]] = []
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            if isinstance(event, PatientErased):
                erased.append((event, await erasure.delete_patient(conn, event.patient_id)))
                kept += 1
                continue
            kept += await projection.apply(conn, event)
    for gone, removed in erased:
        if codec is not None:
            codec.keyring.forget(gone.patient_id)
        if producer is not None:
            await erasure.report(producer, codec, gone, removed, dt.datetime.now(dt.UTC))
    APPLIED.labels("applied").inc(kept)
    APPLIED.labels("ignored").inc(len(events) - kept)
    return kept


async def _prefetch(codec: EventCodec, patients: set[str]) -> None:
    delay = 0.5
    while True:
        try:
            await codec.keyring.prefetch(patients)
            return
        except KEY_SERVICE_DOWN as exc:
            log.warning("data keys unavailable, retrying: %s", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def run(
    pool: asyncpg.Pool,
    kafka: AIOKafkaConsumer,
    wake: asyncio.Event,
    codec: EventCodec | None = None,
    producer: AIOKafkaProducer | None = None,
) -> None:
    """Forever: take a batch, apply it (retrying while the database is down), commit."""
    while True:
        batches = await kafka.getmany(timeout_ms=500, max_records=500)
        values: list[Any] = [r.value for records in batches.values() for r in records]
        if not values:
            continue
        if codec is not None:  # the batch's patients' keys in one request (keyed by patient)
            patients = {r.key.decode() for rs in batches.values() for r in rs if r.key}
            await _prefetch(codec, patients)
        delay = 0.5
        while True:
            try:
                await apply_batch(pool, values, codec, producer)
                break
            except (TimeoutError, OSError, asyncpg.PostgresError, *KEY_SERVICE_DOWN) as exc:
                log.warning("projection not applied, retrying: %s", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        try:
            await kafka.commit()
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offset commit refused after a rebalance: %s", type(exc).__name__)
        LAST_BATCH.set_to_current_time()
        wake.set()
