"""The notifier's ledger and dispatcher on the real PostgreSQL and Kafka; only the SMS port
(``SmsSender``) is a fake here — the sandbox path is covered end to end."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from notifier.service import Notifier
from notifier.sms import SendError, SendResult
from shared.db import migrate
from shared.events import SendNotification, encode_event
from shared.kafka import create_producer
from shared.topics import DEADLETTER, TopicSpec, ensure_topics
from tests.integration.conftest import KAFKA_BOOTSTRAP

NOW = dt.datetime(2026, 5, 1, 15, tzinfo=dt.UTC)


class ScriptedSender:
    """Fails with the scripted errors first, then succeeds; records every attempt."""

    def __init__(self, *errors: SendError) -> None:
        self.errors = list(errors)
        self.attempts: list[tuple[str, str]] = []

    async def send(self, to: str, body: str) -> SendResult:
        self.attempts.append((to, body))
        if self.errors:
            raise self.errors.pop(0)
        return SendResult(provider_sid="SM" + secrets.token_hex(16), status="queued")


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def decision(patient_id: str = "p-it", kind: str = "reassurance") -> SendNotification:
    key = f"{patient_id}:{kind}:{uuid.uuid4()}"
    return SendNotification.model_validate(
        {
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
            "occurred_at": NOW,
            "recorded_at": NOW,
            "patient_id": patient_id,
            "source": "assessor",
            "payload": {
                "dedupe_key": key,
                "kind": kind,
                "audience": "patient",
                "urgency": "routine",
                "to": "+15551230001",
                "language": "es",
                "timezone": "America/Chicago",
                "due_at": NOW,
            },
        }
    )


@pytest.fixture
async def ledger_pool(pool: asyncpg.Pool) -> asyncpg.Pool:
    assert await migrate(pool, "notifier", "notifier") == ["001_ledger"]
    assert await migrate(pool, "notifier", "notifier") == []  # a second run applies nothing
    return pool


@pytest.fixture
async def producer():  # type: ignore[no-untyped-def]
    p = create_producer(KAFKA_BOOTSTRAP, "it-notifier")
    await p.start()
    yield p
    await p.stop()


def notifier(pool: asyncpg.Pool, sender: ScriptedSender, producer, clock: Clock) -> Notifier:  # type: ignore[no-untyped-def]
    return Notifier(
        pool, sender, producer, clock, clinic="Test Clinic", max_attempts=3, interval=0.05
    )


async def statuses(pool: asyncpg.Pool) -> list[tuple[str, int]]:
    rows = await pool.fetch(
        "SELECT status, attempts FROM notifier.notifications ORDER BY created_at"
    )
    return [(r["status"], r["attempts"]) for r in rows]


async def test_a_decision_delivered_twice_is_sent_once(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    sender, clock = ScriptedSender(), Clock(NOW)
    n = notifier(ledger_pool, sender, producer, clock)
    event = decision()
    from notifier import ledger
    from notifier.templates import render

    body = render("reassurance", "es", {}, "Test Clinic")
    assert await ledger.record(ledger_pool, event, body, NOW) is True
    assert await ledger.record(ledger_pool, event, body, NOW) is False  # redelivery

    assert await n.dispatch_once() == 1
    assert await n.dispatch_once() == 0
    assert len(sender.attempts) == 1
    assert "3 de cada 10" in sender.attempts[0][1]
    assert await statuses(ledger_pool) == [("sent", 1)]


async def test_not_due_yet_is_not_sent(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    from notifier import ledger

    sender, clock = ScriptedSender(), Clock(NOW - dt.timedelta(minutes=1))
    n = notifier(ledger_pool, sender, producer, clock)
    await ledger.record(ledger_pool, decision(), "hello", NOW)
    assert await n.dispatch_once() == 0
    clock.now = NOW
    assert await n.dispatch_once() == 1


async def test_transient_errors_are_retried_with_backoff(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    from notifier import ledger

    sender = ScriptedSender(
        SendError("twilio 429 20429", code=20429, permanent=False),
        SendError("ConnectionError", code=None, permanent=False),
    )
    clock = Clock(NOW)
    n = notifier(ledger_pool, sender, producer, clock)
    await ledger.record(ledger_pool, decision(), "hello", NOW)
    for _ in range(3):
        await n.dispatch_once()
        clock.now += dt.timedelta(minutes=10)  # past any backoff
    assert len(sender.attempts) == 3
    assert await statuses(ledger_pool) == [("sent", 3)]


async def test_permanent_errors_are_not_retried(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    from notifier import ledger

    sender = ScriptedSender(SendError("twilio 400 21211", code=21211, permanent=True))
    clock = Clock(NOW)
    n = notifier(ledger_pool, sender, producer, clock)
    await ledger.record(ledger_pool, decision(), "hello", NOW)
    for _ in range(3):
        await n.dispatch_once()
        clock.now += dt.timedelta(minutes=10)
    assert len(sender.attempts) == 1
    assert await statuses(ledger_pool) == [("failed", 1)]


async def test_exhausted_retries_go_to_the_dead_letter_topic(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    from notifier import ledger

    sender = ScriptedSender(*[SendError("twilio 500", code=20500, permanent=False)] * 5)
    clock = Clock(NOW)
    n = notifier(ledger_pool, sender, producer, clock)
    patient = "p-dlq-" + secrets.token_hex(4)
    await ledger.record(ledger_pool, decision(patient), "hello", NOW)
    for _ in range(5):
        await n.dispatch_once()
        clock.now += dt.timedelta(minutes=10)
    assert len(sender.attempts) == 3  # max_attempts
    assert await statuses(ledger_pool) == [("failed", 3)]
    assert patient.encode() in await dead_letter_keys()


async def dead_letter_keys() -> set[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA_BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(DEADLETTER) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(DEADLETTER) or set()
        tps = [TopicPartition(DEADLETTER, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        keys: set[bytes] = set()

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in tps])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                keys.update(r.key for r in records if r.key)
        return keys
    finally:
        await consumer.stop()


async def test_consumed_from_kafka_once_garbage_to_dead_letter(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    topic = "it-decisions-" + secrets.token_hex(4)
    await ensure_topics(KAFKA_BOOTSTRAP, (TopicSpec(topic, 2),))
    event = decision()
    garbage_key = ("garbage-" + secrets.token_hex(4)).encode()
    for value in (encode_event(event), encode_event(event)):
        await producer.send_and_wait(topic, value=value, key=b"p-it")
    await producer.send_and_wait(topic, value=b"{not json", key=garbage_key)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=KAFKA_BOOTSTRAP,
        group_id="it-" + secrets.token_hex(4),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    n = notifier(ledger_pool, ScriptedSender(), producer, Clock(NOW))
    task = asyncio.create_task(n.consume(consumer))
    try:
        for _ in range(100):
            committed = [await consumer.committed(tp) for tp in consumer.assignment()]
            if sum(c or 0 for c in committed) >= 3:
                break
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
    assert await statuses(ledger_pool) == [("scheduled", 0)]
    assert garbage_key in await dead_letter_keys()
