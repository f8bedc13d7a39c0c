"""``idempotent_publish`` against the real PostgreSQL (a scratch database with ingest's
schema): a replayed key answers the first answer and publishes nothing; nothing is
published when the block fails, and nothing is committed when the publish fails.

The producer is the only stand-in: it records what it was given, or fails like a broker
that is down.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaTimeoutError
from fastapi.responses import Response

from ingest import registry
from ingest.keys import LocalKeyring
from ingest.unit_of_work import idempotent_publish
from shared.crypto import EventCodec, parse_master_key
from shared.db import migrate
from shared.events import ClockAdvanced, ClockAdvancedPayload
from shared.settings import DEV_MASTER_KEY
from shared.topics import CLOCK
from shared.web import ApiError

NOW = dt.datetime(2026, 3, 9, 12, 0, tzinfo=dt.UTC)


@dataclass
class RecordingProducer:
    down: bool = False
    sent: list[tuple[str, int | None]] = field(default_factory=list)

    async def send_and_wait(self, topic: str, value: bytes, **options: Any) -> None:
        await asyncio.sleep(0)
        if self.down:
            raise KafkaTimeoutError("broker unreachable")
        self.sent.append((topic, options.get("partition")))


@pytest.fixture
async def ingest_pool(pool: asyncpg.Pool) -> asyncpg.Pool:
    await migrate(pool, "ingest", "ingest")
    return pool


def tick(now: dt.datetime = NOW) -> ClockAdvanced:
    return ClockAdvanced(
        event_id=uuid.uuid4(),
        occurred_at=now,
        recorded_at=now,
        source="clock",
        payload=ClockAdvancedPayload(now=now),
    )


async def record(
    pool: asyncpg.Pool,
    producer: RecordingProducer,
    key: str | None,
    *,
    fingerprint: str = "f1",
    body: bytes = b'{"n": 1}',
    now: dt.datetime = NOW,
    fail: bool = False,
) -> Response:
    """One request: write the clock, answer 202 with ``body``, publish one event."""
    codec = EventCodec(LocalKeyring(pool, parse_master_key(DEV_MASTER_KEY)))
    async with idempotent_publish(
        pool,
        producer,  # type: ignore[arg-type]
        codec,
        scope="test",
        key=key,
        fingerprint=fingerprint,
    ) as uow:
        if uow.replay is not None:
            return uow.replay
        await registry.lock_clock(uow.conn)
        await registry.set_clock(uow.conn, now)
        if fail:
            raise ApiError(422, "invalid_fields", "refused after a write")
        response = Response(body, status_code=202, media_type="application/json")
        uow.answer(response)
        uow.publish(CLOCK, tick(now), partition=0, sealed=False)
    return response


async def test_a_replayed_key_answers_the_first_answer_and_publishes_once(
    ingest_pool: asyncpg.Pool,
) -> None:
    producer = RecordingProducer()
    first = await record(ingest_pool, producer, "k-1", body=b'{"n": 1}')
    again = await record(ingest_pool, producer, "k-1", body=b'{"n": 2}')
    assert producer.sent == [(CLOCK, 0)]
    assert (again.status_code, bytes(again.body), again.media_type) == (
        first.status_code,
        b'{"n": 1}',
        "application/json",
    )


async def test_a_key_reused_with_another_request_is_a_conflict(ingest_pool: asyncpg.Pool) -> None:
    producer = RecordingProducer()
    await record(ingest_pool, producer, "k-2", fingerprint="f1")
    with pytest.raises(ApiError) as refused:
        await record(ingest_pool, producer, "k-2", fingerprint="f2")
    assert (refused.value.status, refused.value.code) == (409, "idempotency_conflict")
    assert len(producer.sent) == 1


async def test_nothing_is_published_or_kept_when_the_block_fails(
    ingest_pool: asyncpg.Pool,
) -> None:
    producer = RecordingProducer()
    with pytest.raises(ApiError):
        await record(ingest_pool, producer, "k-3", fail=True)
    assert producer.sent == []
    assert await registry.simulated_now(ingest_pool) is None  # the write rolled back
    # The key is free again: the retry is a first request, not a replay.
    await record(ingest_pool, producer, "k-3")
    assert producer.sent == [(CLOCK, 0)]


async def test_nothing_is_committed_when_the_publish_fails(ingest_pool: asyncpg.Pool) -> None:
    producer = RecordingProducer(down=True)
    with pytest.raises(KafkaTimeoutError):
        await record(ingest_pool, producer, "k-4")
    assert await registry.simulated_now(ingest_pool) is None
    keys = await ingest_pool.fetchval(
        "SELECT count(*) FROM ingest.idempotency_keys WHERE key = 'k-4'"
    )
    assert keys == 0
    producer.down = False
    await record(ingest_pool, producer, "k-4")
    assert producer.sent == [(CLOCK, 0)]
    assert await registry.simulated_now(ingest_pool) == NOW


async def test_without_a_key_every_request_publishes(ingest_pool: asyncpg.Pool) -> None:
    producer = RecordingProducer()
    await record(ingest_pool, producer, None)
    await record(ingest_pool, producer, None, now=NOW + dt.timedelta(hours=1))
    assert producer.sent == [(CLOCK, 0), (CLOCK, 0)]
    assert await ingest_pool.fetchval("SELECT count(*) FROM ingest.idempotency_keys") == 0
