"""Loops that cannot die quietly, on the real PostgreSQL and Kafka: an exception injected
into each of the notifier's loops (the four consumers, dispatch, escalation, reconciliation)
is survived — the supervisor restarts the loop, the record it was handling is handled again,
and a page still goes out and escalates on time."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from notifier.policy import SimulatedClock, utcnow
from notifier.service import Notifier
from shared.events import (
    ClockAdvanced,
    ConsentChanged,
    MessageStatusReported,
    encode_event,
)
from shared.kafka_security import client_options
from shared.supervisor import Supervisor
from tests.integration.notifier_support import FAST, NOW, ScriptedSender, page, scratch_topic
from tests.integration.stack_env import KAFKA_BOOTSTRAP

ON_CALL, BACKUP = "+15550001111", "+15550002222"


def fail_once(fn: Callable[..., Awaitable[Any]], hits: list[str], name: str) -> Any:
    async def wrapped(*args: Any) -> Any:
        if name not in hits:
            hits.append(name)
            raise RuntimeError(f"injected into {name}")
        return await fn(*args)

    return wrapped


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.1)


async def test_an_exception_in_each_notifier_loop_is_survived(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    topics = {
        name: await scratch_topic(f"it-loops-{name}-", 1)
        for name in ("decisions", "consent", "provider", "clock")
    }
    group = "it-loops-" + secrets.token_hex(4)
    consumers: dict[str, AIOKafkaConsumer] = {}
    for name, topic in topics.items():
        consumers[name] = AIOKafkaConsumer(
            topic,
            bootstrap_servers=KAFKA_BOOTSTRAP,
            **client_options(),
            group_id=f"{group}-{name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumers[name].start()

    sender, clock = ScriptedSender(), SimulatedClock(NOW)
    n = Notifier(
        ledger_pool,
        sender,
        producer,
        clock,
        clinic="Test Clinic",
        max_attempts=3,
        interval=0.05,
        wall=utcnow,
        policy=FAST,
    )
    hits: list[str] = []
    n.on_record = fail_once(n.on_record, hits, "decisions")  # type: ignore[method-assign]
    n.on_patient_event = fail_once(n.on_patient_event, hits, "consent")  # type: ignore[method-assign]
    n.on_provider_event = fail_once(n.on_provider_event, hits, "provider-events")  # type: ignore[method-assign]
    clock_handler = n.on_clock_event(clock)
    n.on_clock_event = lambda _c: fail_once(clock_handler, hits, "clock")  # type: ignore[method-assign,assignment]
    n.dispatch_once = fail_once(n.dispatch_once, hits, "dispatch")  # type: ignore[method-assign]
    n.escalate_once = fail_once(n.escalate_once, hits, "escalation")  # type: ignore[method-assign]
    n.reconcile_once = fail_once(n.reconcile_once, hits, "reconciliation")  # type: ignore[method-assign]

    supervisor = Supervisor(backoff=0.1, max_backoff=1.0)
    for name, loop in n.loops(consumers, clock).items():
        supervisor.add(name, loop)
    supervisor.start()
    try:
        patient = "p-loops-" + secrets.token_hex(3)
        alert = page(patient, to=ON_CALL, backup_to=BACKUP)
        await producer.send_and_wait(topics["decisions"], encode_event(alert))

        async def sent_to(phone: str) -> bool:
            return phone in [to for to, _ in sender.attempts]

        await eventually(lambda: sent_to(ON_CALL), "the page reached the on-call")

        later = NOW + dt.timedelta(minutes=16)
        tick = ClockAdvanced.model_validate(
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": later,
                "recorded_at": later,
                "source": "ingest",
                "payload": {"now": later},
            }
        )
        await producer.send_and_wait(topics["clock"], encode_event(tick))
        await eventually(lambda: sent_to(BACKUP), "the page escalated to the backup")

        stop = ConsentChanged.model_validate(
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": NOW,
                "recorded_at": NOW,
                "patient_id": patient,
                "source": "sms",
                "payload": {"sms_consent": False, "reason": "stop"},
            }
        )
        await producer.send_and_wait(topics["consent"], encode_event(stop))
        await eventually(
            lambda: suppressed(ledger_pool, patient), "the consent change was recorded"
        )

        sid = sender.sent[0].sid
        delivered = MessageStatusReported.model_validate(
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": NOW,
                "recorded_at": NOW,
                "source": "twilio",
                "payload": {"message_sid": sid, "status": "delivered", "error_code": None},
            }
        )
        await producer.send_and_wait(topics["provider"], encode_event(delivered))
        await eventually(
            lambda: provider_status(ledger_pool, sid, "delivered"), "the status was applied"
        )

        expected = {
            "decisions",
            "consent",
            "provider-events",
            "clock",
            "dispatch",
            "escalation",
            "reconciliation",
        }
        assert set(hits) == expected
        status = supervisor.status()
        assert {name: s["restarts"] for name, s in status.items()} == dict.fromkeys(expected, 1)
        assert all(str(s["last_error"]).startswith("RuntimeError at") for s in status.values())
        assert supervisor.stale() == []
        # The page was recorded once although its first handling crashed.
        assert (
            await ledger_pool.fetchval(
                "SELECT count(*) FROM notifier.notifications WHERE root_id IS NULL"
            )
            == 1
        )
    finally:
        await supervisor.stop()
        for c in consumers.values():
            await c.stop()


async def suppressed(pool: asyncpg.Pool, patient: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT suppressed FROM notifier.suppressions WHERE patient_id = $1", patient
        )
    )


async def provider_status(pool: asyncpg.Pool, sid: str, status: str) -> bool:
    return (
        await pool.fetchval(
            "SELECT provider_status FROM notifier.notifications WHERE provider_sid = $1", sid
        )
        == status
    )
