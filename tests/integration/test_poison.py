"""Poison messages on the running stack: a malformed event on each consumed topic lands in
``deadletter.v1`` and its consumer carries on (a valid event after it is processed).

This writes to the shared topics on purpose: the running assessor and notifier consume them.
Keys and patient ids are unique to each run; the valid follow-ups move nothing shared (the
clock event repeats the current clock; the decision is due in ten years; the status callback
names an unknown message).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.events import (
    ClockAdvanced,
    ClockAdvancedPayload,
    MessageStatusReported,
    MessageStatusReportedPayload,
    SendNotification,
    SendNotificationPayload,
    encode_event,
)
from shared.kafka_security import client_options
from shared.topics import CLOCK, DEADLETTER, DECISIONS, PATIENT_EVENTS, PROVIDER_EVENTS
from tests.integration.stack_env import KAFKA_BOOTSTRAP
from tools.client import Stack, end_offsets, eventually

POISON = b'{"type": "symptom.reported", "this is": "not an event"'


@pytest.fixture(scope="module")
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=KAFKA_BOOTSTRAP, **client_options(), acks="all")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with Stack() as s:
        yield s


async def dead_lettered(key: bytes, topic: str, since: dict[int, int], within: float) -> bytes:
    """The reason header, once ``deadletter.v1`` holds a record with ``key`` from ``topic``
    after ``since``; empty if none arrived ``within`` seconds."""
    c = AIOKafkaConsumer(
        bootstrap_servers=KAFKA_BOOTSTRAP, **client_options(), enable_auto_commit=False
    )
    await c.start()
    try:
        tps = [TopicPartition(DEADLETTER, p) for p in since]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, since[tp.partition])
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for msgs in (await c.getmany(timeout_ms=500)).values():
                for m in msgs:
                    headers = dict(m.headers or ())
                    if m.key == key and headers.get("topic") == topic.encode():
                        assert headers.get("reason"), "a dead letter carries its reason"
                        return headers["reason"]
        return b""
    finally:
        await c.stop()


async def groups_past(topic: str, partition: int, offset: int, within: float) -> list[str]:
    """The consumer groups reading ``topic`` whose commit on ``partition`` passed ``offset``
    (waits until every group that reads the topic has, or time runs out)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA_BOOTSTRAP, **client_options())
    await admin.start()
    try:
        deadline = time.monotonic() + within
        while True:
            readers, past = [], []
            for g, *_ in await admin.list_consumer_groups():
                offsets = await admin.list_consumer_group_offsets(g)
                meta = offsets.get(TopicPartition(topic, partition))
                if meta is None:
                    continue
                readers.append(g)
                if meta.offset > offset:
                    past.append(g)
            if (readers and len(past) == len(readers)) or time.monotonic() > deadline:
                return past
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def poison(producer: AIOKafkaProducer, topic: str, key: bytes, partition: int | None) -> None:
    await producer.send_and_wait(topic, value=POISON, key=key, partition=partition)


async def test_patient_events(stack: Stack, producer: AIOKafkaProducer) -> None:
    pid = f"poison-{uuid.uuid4().hex[:10]}"
    now, _ = await stack.clock()
    now = now or dt.datetime.now(dt.UTC)
    await stack.enroll(
        {
            "patient_id": pid,
            "phone": f"+1555{secrets.randbelow(10**7):07d}",
            "timezone": "America/Chicago",
            "language": "en",
            "surgery_date": (now.date() - dt.timedelta(days=5)).isoformat(),
            "baseline_severity": 3,
            "care_team": {"on_call": f"+1555{secrets.randbelow(10**7):07d}"},
            "sms_consent": False,
        }
    )
    since = await end_offsets(KAFKA_BOOTSTRAP, DEADLETTER)
    await poison(producer, PATIENT_EVENTS, pid.encode(), None)  # same partition as the patient
    assert await dead_lettered(pid.encode(), PATIENT_EVENTS, since, within=180)
    # Several valid reports after it, spaced out: the partition keeps moving, not just once.
    event_ids = []
    for _ in range(3):
        event_ids.append(
            await stack.report({"patient_id": pid, "occurred_at": now.isoformat(), "severity": 1})
        )
        await asyncio.sleep(2)

    async def applied() -> bool:
        rec = await stack.recovery(pid)
        return rec is not None and set(event_ids) <= {r["event_id"] for r in rec["reports"]}

    assert await eventually(applied, within=180), (
        "the reports after the poison were not all applied"
    )


async def test_clock(stack: Stack, producer: AIOKafkaProducer) -> None:
    key = f"poison-{uuid.uuid4().hex[:10]}".encode()
    now, _ = await stack.clock()
    since = await end_offsets(KAFKA_BOOTSTRAP, DEADLETTER)
    await poison(producer, CLOCK, key, 0)
    # A valid tick that moves nothing: the clock as it stands.
    tick = ClockAdvanced(
        event_id=uuid.uuid4(),
        occurred_at=now or dt.datetime.now(dt.UTC),
        recorded_at=now or dt.datetime.now(dt.UTC),
        source="poison-test",
        payload=ClockAdvancedPayload(now=now or dt.datetime.now(dt.UTC)),
    )
    meta = await producer.send_and_wait(CLOCK, value=encode_event(tick), partition=0)
    assert await dead_lettered(key, CLOCK, since, within=180)
    assert await groups_past(CLOCK, 0, meta.offset, within=180), "no consumer passed the tick"


async def test_decisions(stack: Stack, producer: AIOKafkaProducer) -> None:
    pid = f"poison-{uuid.uuid4().hex[:10]}"
    since = await end_offsets(KAFKA_BOOTSTRAP, DEADLETTER)
    await poison(producer, DECISIONS, pid.encode(), None)
    now = dt.datetime.now(dt.UTC)
    decision = SendNotification(
        event_id=uuid.uuid4(),
        occurred_at=now,
        recorded_at=now,
        patient_id=pid,
        source="poison-test",
        payload=SendNotificationPayload(
            dedupe_key=f"{pid}:reassurance:test",
            kind="reassurance",
            audience="patient",
            urgency="routine",
            to="+15557770003",
            language="en",
            timezone="America/Chicago",
            due_at=now + dt.timedelta(days=3650),  # recorded, never due
        ),
    )
    await producer.send_and_wait(DECISIONS, value=encode_event(decision), key=pid.encode())
    assert await dead_lettered(pid.encode(), DECISIONS, since, within=180)

    async def recorded() -> bool:
        return any(
            n["dedupe_key"] == decision.payload.dedupe_key for n in await stack.notifications(pid)
        )

    assert await eventually(recorded, within=180), "the decision after the poison was not recorded"


def quoting(topic_type: str, phone: str) -> bytes:
    """A well-formed envelope whose payload is not one: the validator's own message would
    quote the payload, and with it the phone number."""
    now = dt.datetime.now(dt.UTC).isoformat()
    return json.dumps(
        {
            "type": topic_type,
            "event_id": str(uuid.uuid4()),
            "occurred_at": now,
            "recorded_at": now,
            "patient_id": "poison-quote",
            "source": "poison-test",
            "payload": f"text from {phone}",
        }
    ).encode()


@pytest.mark.parametrize(
    ("topic", "type_"),
    [(PATIENT_EVENTS, "symptom.reported"), (DECISIONS, "notification.send")],
)
async def test_dead_letter_reason_quotes_no_input(
    stack: Stack, producer: AIOKafkaProducer, topic: str, type_: str
) -> None:
    key = f"poison-{uuid.uuid4().hex[:10]}".encode()
    phone = f"+1555{secrets.randbelow(10**7):07d}"
    since = await end_offsets(KAFKA_BOOTSTRAP, DEADLETTER)
    await producer.send_and_wait(topic, value=quoting(type_, phone), key=key)
    reason = await dead_lettered(key, topic, since, within=180)
    assert reason, "the invalid event was not dead-lettered"
    assert phone.encode() not in reason
    assert phone[1:].encode() not in reason
    assert b"payload" in reason, "the reason still names the failing field"


async def test_provider_events(producer: AIOKafkaProducer) -> None:
    key = f"poison-{uuid.uuid4().hex[:10]}".encode()
    since = await end_offsets(KAFKA_BOOTSTRAP, DEADLETTER)
    await poison(producer, PROVIDER_EVENTS, key, 0)
    now = dt.datetime.now(dt.UTC)
    status = MessageStatusReported(
        event_id=uuid.uuid4(),
        occurred_at=now,
        recorded_at=now,
        source="poison-test",
        payload=MessageStatusReportedPayload(message_sid="SM" + uuid.uuid4().hex, status="sent"),
    )
    meta = await producer.send_and_wait(PROVIDER_EVENTS, value=encode_event(status), partition=0)
    assert await dead_lettered(key, PROVIDER_EVENTS, since, within=180)
    assert await groups_past(PROVIDER_EVENTS, 0, meta.offset, within=180), "no consumer moved on"
