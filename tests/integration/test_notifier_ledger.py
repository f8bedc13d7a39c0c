"""The notifier's ledger and dispatcher on the real PostgreSQL and Kafka; only the SMS port
(``SmsSender``) is a fake here — the sandbox path is covered end to end."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets

import asyncpg
from aiokafka import AIOKafkaConsumer

from notifier import ledger
from notifier.sms import SendError
from notifier.templates import render
from shared.events import encode_event
from shared.kafka_security import client_options
from shared.topics import DEADLETTER
from tests.integration.notifier_support import (
    NOW,
    Clock,
    Record,
    ScriptedSender,
    decision,
    make_notifier,
    read_topic,
    scratch_topic,
    statuses,
)
from tests.integration.stack_env import KAFKA_BOOTSTRAP


def notifier(pool: asyncpg.Pool, sender: ScriptedSender, producer, clock: Clock):  # type: ignore[no-untyped-def]
    return make_notifier(pool, sender, producer, clock)


async def test_a_decision_delivered_twice_is_sent_once(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    sender, clock = ScriptedSender(), Clock(NOW)
    n = notifier(ledger_pool, sender, producer, clock)
    event = decision()
    body = render("reassurance", "es", {}, "Test Clinic")
    assert await ledger.record(ledger_pool, event, body, NOW) is True
    assert await ledger.record(ledger_pool, event, body, NOW) is False  # redelivery

    assert await n.dispatch_once() == 1
    assert await n.dispatch_once() == 0
    assert len(sender.attempts) == 1
    assert "3 de cada 10" in sender.attempts[0][1]
    assert await statuses(ledger_pool) == [("sent", 1)]


async def test_not_due_yet_is_not_sent(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    sender, clock = ScriptedSender(), Clock(NOW - dt.timedelta(minutes=1))
    n = notifier(ledger_pool, sender, producer, clock)
    await ledger.record(ledger_pool, decision(), "hello", NOW)
    assert await n.dispatch_once() == 0
    clock.now = NOW
    assert await n.dispatch_once() == 1


async def test_transient_errors_are_retried_with_backoff(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
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
    return {k for k, _ in await read_topic(DEADLETTER) if k}


async def test_consumed_from_kafka_once_garbage_to_dead_letter(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    topic = await scratch_topic("it-decisions-", 2)
    event = decision()
    garbage_key = ("garbage-" + secrets.token_hex(4)).encode()
    for value in (encode_event(event), encode_event(event)):
        await producer.send_and_wait(topic, value=value, key=b"p-it")
    await producer.send_and_wait(topic, value=b"{not json", key=garbage_key)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=KAFKA_BOOTSTRAP,
        **client_options(),
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


async def test_a_decision_the_ledger_refuses_is_dead_lettered_and_the_next_goes_through(
    ledger_pool, producer
) -> None:  # type: ignore[no-untyped-def]
    """A NUL character is valid JSON and a valid decision, but PostgreSQL refuses it in text
    and jsonb: the same error every time, so retrying it would hold the partition forever."""
    n = notifier(ledger_pool, ScriptedSender(), producer, Clock(NOW))
    refused = decision("p-refused", facts={"evidence": "day 4: \x00 +15551230001"})
    after = decision("p-after")
    for event in (refused, after):
        await asyncio.wait_for(n._until_done(n.on_record, Record(encode_event(event))), 30)
    rows = await ledger_pool.fetch("SELECT dedupe_key FROM notifier.notifications")
    assert [r["dedupe_key"] for r in rows] == [after.payload.dedupe_key]
    letters = [
        (key, value)
        for key, value in await read_topic(DEADLETTER)
        if value == encode_event(refused)
    ]
    assert letters, "the refused decision is not in the dead letters"
