"""Paging on the real PostgreSQL and Kafka: escalation on the injected clock, ACK by SMS and
by API, pages that cannot be delivered; and the simulated clock read from a clock topic."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from notifier import ledger_reads
from notifier.policy import SimulatedClock
from notifier.service import Notifier
from notifier.sms import SendError
from shared.events import AckReceived, ClockAdvanced, encode_event
from shared.kafka_security import client_options
from tests.integration.notifier_support import (
    NOW,
    Clock,
    Record,
    ScriptedSender,
    decision,
    make_notifier,
    page,
    scratch_topic,
    status_event,
)
from tests.integration.stack_env import KAFKA_BOOTSTRAP

ON_CALL, BACKUP = "+15550001111", "+15550002222"


async def chain(pool: asyncpg.Pool, patient_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await ledger_reads.for_patient(pool, patient_id)]


def ack_event(code: str, phone: str) -> Record:
    event = AckReceived.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "occurred_at": NOW,
            "recorded_at": NOW,
            "patient_id": None,
            "source": "ingest",
            "payload": {"ack_code": code, "from_phone": phone},
        }
    )
    return Record(encode_event(event))


Setup = tuple[Notifier, ScriptedSender, Clock, str, str]


async def setup(pool: asyncpg.Pool, producer: Any, **kwargs: Any) -> Setup:
    sender, clock = ScriptedSender(), Clock(NOW)
    n = make_notifier(pool, sender, producer, clock)
    patient = "p-page-" + secrets.token_hex(3)
    event = page(patient, to=ON_CALL, backup_to=BACKUP, **kwargs)
    await n.on_record(Record(encode_event(event)))
    await n.tick()
    code = await pool.fetchval(
        "SELECT ack_code FROM notifier.notifications WHERE dedupe_key = $1",
        event.payload.dedupe_key,
    )
    return n, sender, clock, patient, code


async def test_urgent_page_escalates_to_the_backup_then_repeats(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    n, sender, clock, patient, code = await setup(ledger_pool, producer)
    assert [to for to, _ in sender.attempts] == [ON_CALL]
    assert sender.attempts[0][1].endswith(f"Reply ACK {code}")
    assert "URGENT" in sender.attempts[0][1]

    clock.advance(minutes=14, seconds=59)
    await n.tick()
    assert len(sender.attempts) == 1  # not yet
    clock.advance(seconds=1)
    await n.tick()
    assert [to for to, _ in sender.attempts] == [ON_CALL, BACKUP]
    rows = await chain(ledger_pool, patient)
    assert [r["status"] for r in rows] == ["escalated", "sent"]
    assert rows[1]["dedupe_key"] == rows[0]["dedupe_key"] + ":esc1"
    assert f"ACK {code}" in sender.attempts[1][1]

    for _ in range(6):  # every 15 minutes, up to 3 repeats, then silence
        clock.advance(minutes=15)
        await n.tick()
    assert len(sender.attempts) == 5
    keys = [r["dedupe_key"].rsplit(":", 1)[-1] for r in await chain(ledger_pool, patient)]
    assert keys[1:] == ["esc1", "esc2", "esc3", "esc4"]
    assert "reminder 4" in sender.attempts[-1][1]


async def test_ack_by_sms_only_from_that_pages_phones(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    n, sender, clock, patient, code = await setup(ledger_pool, producer)
    await n.on_provider_event(ack_event(code, "+15559999999"))  # a stranger
    await n.on_provider_event(ack_event("ZZZZ", ON_CALL))  # another code
    assert [r["status"] for r in await chain(ledger_pool, patient)] == ["sent"]

    await n.on_provider_event(ack_event(code, ON_CALL))
    assert [r["status"] for r in await chain(ledger_pool, patient)] == ["acknowledged"]
    for _ in range(5):
        clock.advance(minutes=15)
        await n.tick()
    assert len(sender.attempts) == 1  # no escalation after the ACK


async def test_ack_by_the_backup_after_escalation(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    n, sender, clock, patient, code = await setup(ledger_pool, producer)
    clock.advance(minutes=15)
    await n.tick()
    await n.on_provider_event(ack_event(code, BACKUP))
    assert [r["status"] for r in await chain(ledger_pool, patient)] == [
        "acknowledged",
        "acknowledged",
    ]
    clock.advance(minutes=30)
    await n.tick()
    assert len(sender.attempts) == 2


async def test_ack_by_api(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    n, sender, clock, patient, _ = await setup(ledger_pool, producer)
    text = decision(patient, to="+15551230001")
    await n.on_record(Record(encode_event(text)))
    await n.tick()
    rows = await chain(ledger_pool, patient)
    by_kind = {r["kind"]: uuid.UUID(r["notification_id"]) for r in rows}
    assert await n.acknowledge(uuid.uuid4()) == "not_found"
    assert await n.acknowledge(by_kind["reassurance"]) == "not_a_page"
    assert await n.acknowledge(by_kind["worsening"]) == "ok"
    assert await n.acknowledge(by_kind["worsening"]) == "ok"  # idempotent
    clock.advance(minutes=20)
    await n.tick()
    assert len(sender.attempts) == 2  # the page and the text, no escalation


async def test_routine_alerts_wait_for_due_at_and_never_escalate(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    sender, clock = ScriptedSender(), Clock(NOW)
    n = make_notifier(ledger_pool, sender, producer, clock)
    due = NOW + dt.timedelta(hours=2)
    event = page("p-routine", kind="six_month_persistence", urgency="routine", due_at=due)
    await n.on_record(Record(encode_event(event)))
    await n.tick()
    assert sender.attempts == []
    clock.now = due
    await n.tick()
    assert len(sender.attempts) == 1
    assert "Alert:" in sender.attempts[0][1]
    assert "Reply ACK" in sender.attempts[0][1]
    clock.advance(hours=2)
    await n.tick()
    assert len(sender.attempts) == 1


@pytest.mark.parametrize("error", ["permanent", "exhausted", "undelivered"])
async def test_an_undeliverable_page_goes_to_the_backup_at_once(
    ledger_pool, producer, error
) -> None:  # type: ignore[no-untyped-def]
    sender, clock = ScriptedSender(), Clock(NOW)
    n = make_notifier(ledger_pool, sender, producer, clock, max_attempts=2)
    if error == "permanent":
        sender.errors = [SendError("twilio 400 21211", code=21211, permanent=True)]
    elif error == "exhausted":
        sender.errors = [SendError("twilio 503", code=20503, permanent=False)] * 2
    patient = "p-undeliverable-" + secrets.token_hex(3)
    await n.on_record(Record(encode_event(page(patient, to=ON_CALL, backup_to=BACKUP))))
    for _ in range(3):
        await n.tick()
        clock.advance(seconds=1)  # past any (fast) back-off, far from 15 minutes
        await asyncio.sleep(0.25)
    if error == "undelivered":
        await n.on_provider_event(status_event(sender.sent[0].sid, "undelivered", 30003))
        await n.tick()
        rows = await chain(ledger_pool, patient)
        assert [r["status"] for r in rows] == ["scheduled", "sent"]  # to be sent again
        clock.advance(seconds=2)  # past the verify delay
        await n.tick()
        assert [to for to, _ in sender.attempts] == [ON_CALL, BACKUP, ON_CALL]
    assert BACKUP in [to for to, _ in sender.attempts]
    rows = await chain(ledger_pool, patient)
    assert [r["status"] for r in rows] == ["escalated", "sent"]


# --- the simulated clock -----------------------------------------------------------------------


async def test_simulated_clock_from_every_partition_survives_a_restart(
    ledger_pool, producer
) -> None:  # type: ignore[no-untyped-def]
    topic = await scratch_topic("it-clock-", 3)
    times = [NOW + dt.timedelta(days=d) for d in (3, 1, 2)]
    for partition, when in enumerate(times):
        event = ClockAdvanced.model_validate(
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": when,
                "recorded_at": when,
                "source": "ingest",
                "payload": {"now": when},
            }
        )
        await producer.send_and_wait(topic, encode_event(event), partition=partition)

    sender = ScriptedSender()
    clock = SimulatedClock()
    await clock.load(ledger_pool)
    assert clock() < NOW  # nothing is due before the first tick
    n = make_notifier(ledger_pool, sender, producer, clock)  # type: ignore[arg-type]
    due_day2 = decision(to="+15551230002", due_at=NOW + dt.timedelta(days=2))
    due_day4 = decision(to="+15551230004", due_at=NOW + dt.timedelta(days=4))
    for event in (due_day2, due_day4):
        await n.on_record(Record(encode_event(event)))

    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA_BOOTSTRAP, **client_options(), enable_auto_commit=False
    )
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    task = asyncio.create_task(n.consume_topic(consumer, n.on_clock_event(clock), commit=False))
    try:
        for _ in range(100):
            if clock() == times[0]:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
    assert clock() == NOW + dt.timedelta(days=3)  # the latest, whatever the order
    await n.tick()
    assert [to for to, _ in sender.attempts] == ["+15551230002"]

    restarted = SimulatedClock()
    await restarted.load(ledger_pool)
    assert restarted() == NOW + dt.timedelta(days=3)
    assert not await restarted.advance(ledger_pool, NOW)  # never backwards
    assert restarted() == NOW + dt.timedelta(days=3)
