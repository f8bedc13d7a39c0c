"""Pages until answered, on the real PostgreSQL and Kafka: an urgent page is never final
while its alert is open, its escalation runs on schedule through a provider outage, an alert
unanswered after its last reminder is an incident, and ACK codes are long, reusable once
acknowledged, and cannot be guessed quickly."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from notifier import ledger
from notifier import metrics as ledger_metrics
from notifier.service import Notifier
from notifier.sms import SendError, SendResult
from shared.events import AckReceived, encode_event
from tests.integration.notifier_support import (
    NOW,
    Clock,
    Record,
    ScriptedSender,
    make_notifier,
    page,
)

ON_CALL, BACKUP = "+15550001111", "+15550002222"


class OutageSender(ScriptedSender):
    """A provider that answers 503 while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def send(self, to: str, body: str) -> SendResult:
        if self.down:
            self.attempts.append((to, body))
            raise SendError("twilio 503 20503", code=20503, permanent=False, ambiguous=True)
        return await super().send(to, body)


class BrokenProducer:
    """Kafka unreachable: every publish fails."""

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> None:
        raise KafkaConnectionError("broker down")


async def rows_of(pool: asyncpg.Pool, patient: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT status, to_phone, attempts, escalation_step, incident_at, ack_code"
            " FROM notifier.notifications WHERE patient_id = $1"
            " ORDER BY escalation_step",
            patient,
        )
    )


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


async def record_page(n: Notifier, pool: asyncpg.Pool) -> tuple[str, str]:
    patient = "p-until-" + secrets.token_hex(3)
    event = page(patient, to=ON_CALL, backup_to=BACKUP)
    await n.on_record(Record(encode_event(event)))
    code = await pool.fetchval(
        "SELECT ack_code FROM notifier.notifications WHERE dedupe_key = $1",
        event.payload.dedupe_key,
    )
    return patient, str(code)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_page_through_a_30_minute_outage_escalates_on_time_and_is_never_failed(
    ledger_pool, producer
) -> None:  # type: ignore[no-untyped-def]
    sender, clock = OutageSender(), Clock(NOW)
    # Early escalation after max_attempts aside, the schedule alone moves the alert on.
    n = make_notifier(ledger_pool, sender, producer, clock, max_attempts=1000)
    sender.down = True
    patient, code = await record_page(n, ledger_pool)
    for minute in range(1, 31):
        await n.tick()
        clock.advance(minutes=1)
        rows = await rows_of(ledger_pool, patient)
        assert all(r["status"] != "failed" for r in rows), (minute, rows)
        # the hand-over to the backup happens at 15 minutes, delivered or not
        assert len(rows) == (1 if minute <= 15 else 2 if minute <= 30 else 3), (minute, rows)
    await n.tick()
    rows = await rows_of(ledger_pool, patient)
    assert [r["escalation_step"] for r in rows] == [0, 1, 2]
    assert [r["to_phone"] for r in rows] == [ON_CALL, BACKUP, BACKUP]
    assert rows[0]["attempts"] == 31  # retried every minute, still open
    assert {r["status"] for r in rows} == {"scheduled"}

    sender.down = False  # the provider returns: every text of the alert goes out
    clock.advance(minutes=1)
    await n.tick()
    delivered = [to for to, _ in sender.attempts[-3:]]
    assert sorted(delivered) == sorted([ON_CALL, BACKUP, BACKUP])
    rows = await rows_of(ledger_pool, patient)
    assert [r["status"] for r in rows] == ["escalated", "sent", "sent"]

    await n.on_provider_event(ack_event(code, ON_CALL))
    assert {r["status"] for r in await rows_of(ledger_pool, patient)} == {"acknowledged"}


async def test_an_acknowledged_page_is_not_retried(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    sender, clock = OutageSender(), Clock(NOW)
    n = make_notifier(ledger_pool, sender, producer, clock)
    sender.down = True
    patient, code = await record_page(n, ledger_pool)
    await n.tick()
    await n.on_provider_event(ack_event(code, ON_CALL))
    sender.down = False
    before = len(sender.attempts)
    for _ in range(3):
        clock.advance(minutes=20)
        await n.tick()
    assert len(sender.attempts) == before
    assert [r["status"] for r in await rows_of(ledger_pool, patient)] == ["acknowledged"]


async def test_escalation_comes_before_a_dead_letter_that_fails(ledger_pool) -> None:  # type: ignore[no-untyped-def]
    """Kafka down while a page keeps failing: the page still goes to the backup."""
    sender, clock = OutageSender(), Clock(NOW)
    n = make_notifier(ledger_pool, sender, BrokenProducer(), clock, max_attempts=2)
    sender.down = True
    patient, _ = await record_page(n, ledger_pool)
    for _ in range(3):
        await n.tick()
        clock.advance(seconds=1)
    sender.down = False
    await n.tick()
    rows = await rows_of(ledger_pool, patient)
    assert [r["to_phone"] for r in rows] == [ON_CALL, BACKUP]  # escalated after 2 attempts
    assert "failed" not in [r["status"] for r in rows]
    assert rows[0]["attempts"] > 2  # past max_attempts, never final
    assert BACKUP in [to for to, _ in sender.attempts]


async def test_an_alert_unanswered_after_its_last_reminder_is_an_incident(
    ledger_pool, producer
) -> None:  # type: ignore[no-untyped-def]
    sender, clock = ScriptedSender(), Clock(NOW)
    n = make_notifier(ledger_pool, sender, producer, clock)
    before = counter("notifier_page_incidents_total", reached="no")
    patient, _ = await record_page(n, ledger_pool)
    await n.tick()
    for _ in range(4):  # the hand-over and three reminders
        clock.advance(minutes=15)
        await n.tick()
    assert (await rows_of(ledger_pool, patient))[0]["incident_at"] is None
    clock.advance(minutes=15)
    await n.tick()
    rows = await rows_of(ledger_pool, patient)
    assert rows[0]["incident_at"] == clock.now
    assert len(rows) == 5
    assert counter("notifier_page_incidents_total", reached="no") == before + 1
    await ledger_metrics.refresh(ledger_pool)
    assert counter("notifier_pages", state="incident") == 1
    clock.advance(hours=2)
    await n.tick()  # counted once
    assert counter("notifier_page_incidents_total", reached="no") == before + 1


async def test_ack_codes_are_long_unambiguous_and_unique_only_among_open_alerts(
    ledger_pool, producer
) -> None:  # type: ignore[no-untyped-def]
    sender, clock = ScriptedSender(), Clock(NOW)
    n = make_notifier(ledger_pool, sender, producer, clock)
    _, code = await record_page(n, ledger_pool)
    assert len(code) >= 6
    assert set(code) <= set(ledger.ACK_ALPHABET)
    assert not set(ledger.ACK_ALPHABET) & set("0O1IL5S2Z")

    await ledger_pool.execute(
        "UPDATE notifier.notifications SET ack_code = 'AAAAAA' WHERE ack_code = $1", code
    )
    other = await record_page(n, ledger_pool)
    clash = (
        "UPDATE notifier.notifications SET ack_code = 'AAAAAA'"
        " WHERE ack_code = $1 AND root_id IS NULL"
    )
    with pytest.raises(asyncpg.UniqueViolationError):  # two open alerts never share a code
        await ledger_pool.execute(clash, other[1])
    await n.on_provider_event(ack_event("AAAAAA", ON_CALL))  # the first alert is closed
    await ledger_pool.execute(clash, other[1])  # now the code is free again
    await n.on_provider_event(ack_event("AAAAAA", ON_CALL))
    rows = await rows_of(ledger_pool, other[0])
    assert rows[0]["status"] == "acknowledged"


async def test_wrong_acks_are_throttled_per_phone(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    sender, clock = ScriptedSender(), Clock(NOW)
    n = make_notifier(ledger_pool, sender, producer, clock)
    patient, code = await record_page(n, ledger_pool)
    await n.tick()
    throttled = counter("notifier_acks_throttled_total")
    for _ in range(n.policy.ack_failures):
        await n.on_provider_event(ack_event("BBBBBB", ON_CALL))
    await n.on_provider_event(ack_event(code, ON_CALL))  # right, but too late: ignored
    assert counter("notifier_acks_throttled_total") == throttled + 1
    assert (await rows_of(ledger_pool, patient))[0]["status"] == "sent"

    await n.on_provider_event(ack_event(code, BACKUP))  # another phone is not throttled
    assert (await rows_of(ledger_pool, patient))[0]["status"] == "acknowledged"

    clock.advance(minutes=16)  # the window passes
    patient2, code2 = await record_page(n, ledger_pool)
    await n.tick()
    await n.on_provider_event(ack_event(code2, ON_CALL))
    assert (await rows_of(ledger_pool, patient2))[0]["status"] == "acknowledged"
