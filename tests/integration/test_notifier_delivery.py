"""Delivery through the real Twilio SDK to an SMS sandbox of our own (in-process, on a free
port), with the ledger on the real PostgreSQL and events on the real Kafka: faults, a crash
between the provider call and the record, opt-outs and status callbacks."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from notifier import ledger
from notifier.policy import Policy
from notifier.service import Notifier
from notifier.sms import ProviderMessage, SendError, SendResult, SmsSender
from shared.events import (
    ConsentChanged,
    PatientEnrolled,
    SymptomReported,
    encode_event,
)
from tests.integration.notifier_support import (
    FAST,
    NOW,
    Clock,
    Record,
    SandboxServer,
    ScriptedSender,
    decision,
    make_notifier,
    page,
    random_phone,
    read_events,
    status_event,
)


def real_wall() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def drive(n: Notifier, done: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    """Run the dispatcher's rounds until ``done`` (real time passes: back-off is real)."""
    deadline = time.monotonic() + within
    while not await done():
        assert time.monotonic() < deadline, "not settled in time"
        await n.tick()
        await asyncio.sleep(0.05)


async def row_of(pool: asyncpg.Pool, dedupe_key: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT * FROM notifier.notifications WHERE dedupe_key = $1", dedupe_key
    )
    assert row is not None
    return row


async def final(pool: asyncpg.Pool) -> bool:
    return not await pool.fetchval(
        "SELECT count(*) FROM notifier.notifications WHERE status IN ('scheduled', 'sending')"
    )


async def record(n: Notifier, event: Any) -> None:
    await n.on_record(Record(encode_event(event)))


# --- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "count"), [("429", 4), ("500", 2), ("drop", 2)])
async def test_transient_faults_are_retried_and_the_text_is_sent_once(
    ledger_pool, producer, sandbox: SandboxServer, mode: str, count: int
) -> None:  # type: ignore[no-untyped-def]
    n = make_notifier(
        ledger_pool, sandbox.sender(timeout=3), producer, Clock(NOW), wall=real_wall, max_attempts=8
    )
    phone = random_phone()
    event = decision(to=phone)
    await record(n, event)
    await sandbox.fault(mode, count)
    await drive(n, lambda: final(ledger_pool))

    sent = await sandbox.messages(phone)
    assert len(sent) == 1
    row = await row_of(ledger_pool, event.payload.dedupe_key)
    assert (row["status"], row["provider_sid"]) == ("sent", sent[0]["sid"])
    assert row["attempts"] >= 2
    assert sent[0]["body"] == row["body"]
    assert "STOP" in row["body"]  # the first text to this phone


async def test_slow_answers_do_not_block_the_loop(
    ledger_pool, producer, sandbox: SandboxServer
) -> None:  # type: ignore[no-untyped-def]
    n = make_notifier(ledger_pool, sandbox.sender(timeout=5), producer, Clock(NOW), wall=real_wall)
    phones = [random_phone() for _ in range(3)]
    for phone in phones:
        await record(n, decision(to=phone))
    await sandbox.fault("slow", 3, delay_ms=600)
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            await asyncio.sleep(0.01)
            beats += 1

    hb = asyncio.create_task(heartbeat())
    started = time.monotonic()
    try:
        await drive(n, lambda: final(ledger_pool))
    finally:
        hb.cancel()
    elapsed = time.monotonic() - started
    assert elapsed >= 0.6
    assert beats >= elapsed / 0.01 * 0.3  # the loop kept running while the SDK waited
    for phone in phones:
        assert len(await sandbox.messages(phone)) == 1


async def test_a_timeout_is_looked_up_before_any_resend(
    ledger_pool, producer, sandbox: SandboxServer
) -> None:  # type: ignore[no-untyped-def]
    """The provider answers after the SDK gave up, but it did create the message: the next
    attempt finds it at the provider and does not send again."""
    policy = Policy(
        lease=dt.timedelta(seconds=30),
        verify_delay=dt.timedelta(seconds=2.5),
        retry_base=0.05,
        retry_cap=0.2,
    )
    n = make_notifier(
        ledger_pool,
        sandbox.sender(timeout=0.5),
        producer,
        Clock(NOW),
        wall=real_wall,
        policy=policy,
    )
    phone = random_phone()
    event = decision(to=phone, language="en")
    await record(n, event)
    await sandbox.fault("slow", 1, delay_ms=1500)
    await drive(n, lambda: final(ledger_pool))

    await asyncio.sleep(0.5)  # nothing more arrives later either
    sent = await sandbox.messages(phone)
    assert len(sent) == 1
    row = await row_of(ledger_pool, event.payload.dedupe_key)
    assert row["provider_sid"] == sent[0]["sid"]
    assert row["attempts"] == 2  # the timed-out call, then the look-up that found it
    assert row["status"] in {"sent", "delivered"}


# --- killed mid-send -------------------------------------------------------------------------


class HangsAfterSend:
    """The real sender, but the dispatcher never gets to record: it hangs after the provider
    accepted the message (the process is killed there)."""

    def __init__(self, inner: SmsSender, *, before: bool = False) -> None:
        self.inner = inner
        self.before = before
        self.called = asyncio.Event()

    async def send(self, to: str, body: str) -> SendResult:
        if not self.before:
            await self.inner.send(to, body)
        self.called.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def recent(self, to: str, since: dt.datetime) -> list[ProviderMessage]:
        return await self.inner.recent(to, since)


async def kill_mid_send(n: Notifier, sender: HangsAfterSend) -> None:
    task = asyncio.create_task(n.dispatch_once())
    await asyncio.wait_for(sender.called.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("audience", ["patient", "care_team"])
async def test_killed_after_the_provider_call_is_reconciled_not_resent(
    ledger_pool, producer, sandbox: SandboxServer, audience: str
) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(NOW)
    hangs = HangsAfterSend(sandbox.sender())
    n1 = make_notifier(ledger_pool, hangs, producer, clock, wall=real_wall)
    phone = random_phone()
    event = decision(to=phone) if audience == "patient" else page("p-kill", to=phone)
    await record(n1, event)
    await kill_mid_send(n1, hangs)
    assert (await row_of(ledger_pool, event.payload.dedupe_key))["status"] == "sending"

    # A fresh notifier: before the lease runs out it leaves the row alone …
    n2 = make_notifier(ledger_pool, sandbox.sender(), producer, clock, wall=real_wall)
    assert await n2.reconcile_once() == 0
    # … after it, it looks the message up at the provider and records it.
    later = Clock(real_wall() + FAST.lease + dt.timedelta(seconds=1))
    n3 = make_notifier(ledger_pool, sandbox.sender(), producer, clock, wall=later)
    assert await n3.reconcile_once() == 1
    assert await n3.dispatch_once() == 0

    sent = await sandbox.messages(phone)
    assert len(sent) == 1
    row = await row_of(ledger_pool, event.payload.dedupe_key)
    # Recorded from the provider's copy, whose status may already have moved on to
    # "delivered" by the time it is looked up (the sandbox delivers after a short delay).
    assert row["status"] in ("sent", "delivered")
    assert row["provider_sid"] == sent[0]["sid"]


async def test_killed_before_the_provider_call_is_sent_after_reconciliation(
    ledger_pool, producer, sandbox: SandboxServer
) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(NOW)
    hangs = HangsAfterSend(sandbox.sender(), before=True)
    n1 = make_notifier(ledger_pool, hangs, producer, clock, wall=real_wall)
    phone = random_phone()
    event = decision(to=phone)
    await record(n1, event)
    await kill_mid_send(n1, hangs)
    assert await sandbox.messages(phone) == []

    later = Clock(real_wall() + FAST.lease + dt.timedelta(seconds=1))
    n2 = make_notifier(ledger_pool, sandbox.sender(), producer, clock, wall=later)
    assert await n2.reconcile_once() == 1  # not at the provider: scheduled again
    assert await n2.dispatch_once() == 1
    sent = await sandbox.messages(phone)
    assert len(sent) == 1
    assert (await row_of(ledger_pool, event.payload.dedupe_key))["provider_sid"] == sent[0]["sid"]


async def test_unreachable_provider_during_reconciliation(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    """A patient text waits (never sent blindly); a page is resent (a duplicate beats a miss)."""
    clock = Clock(NOW)
    sender = ScriptedSender()
    n = make_notifier(ledger_pool, sender, producer, clock)
    text, alert = decision(to=random_phone()), page("p-unreach")
    for event in (text, alert):
        await record(n, event)
    await ledger_pool.execute(
        "UPDATE notifier.notifications SET status = 'sending', call_started_at = $1,"
        " lease_until = $1, body = body",
        NOW,
    )
    sender.lookup_error = SendError("ConnectionError", code=None, permanent=False)
    clock.advance(minutes=5)
    assert await n.reconcile_once() == 2
    assert (await row_of(ledger_pool, text.payload.dedupe_key))["status"] == "sending"
    assert (await row_of(ledger_pool, alert.payload.dedupe_key))["status"] == "scheduled"
    await n.dispatch_once()
    assert [to for to, _ in sender.attempts] == [alert.payload.to]

    sender.lookup_error = None  # the provider is back: nothing found, so the text goes out
    clock.advance(minutes=5)
    assert await n.reconcile_once() == 1
    await n.dispatch_once()
    assert [to for to, _ in sender.attempts] == [alert.payload.to, text.payload.to]


async def test_redelivered_and_replayed_decisions_send_once(
    ledger_pool, producer, sandbox: SandboxServer
) -> None:  # type: ignore[no-untyped-def]
    n = make_notifier(ledger_pool, sandbox.sender(), producer, Clock(NOW), wall=real_wall)
    phone = random_phone()
    event = decision(to=phone)
    await record(n, event)
    await drive(n, lambda: final(ledger_pool))
    for _ in range(3):  # redelivery, then a replay from the beginning
        await record(n, event)
        await n.tick()
    assert len(await sandbox.messages(phone)) == 1


# --- consent ---------------------------------------------------------------------------------


async def test_provider_21610_suppresses_the_patient_and_tells_the_assessor(
    ledger_pool, producer, sandbox: SandboxServer, patient_topic: str
) -> None:  # type: ignore[no-untyped-def]
    n = make_notifier(
        ledger_pool, sandbox.sender(), producer, Clock(NOW), wall=real_wall,
        patient_topic=patient_topic,
    )  # fmt: skip
    patient = "p-stop-" + secrets.token_hex(3)
    blocked = "+15005550004"  # Twilio's magic number: unsubscribed recipient
    first = decision(patient, to=blocked)
    await record(n, first)
    await drive(n, lambda: final(ledger_pool))
    row = await row_of(ledger_pool, first.payload.dedupe_key)
    assert (row["status"], row["error_code"], row["attempts"]) == ("suppressed", 21610, 1)
    assert await ledger.is_suppressed(ledger_pool, patient)

    events = await read_events(patient_topic)
    assert len(events) == 1
    assert isinstance(events[0], ConsentChanged)
    assert events[0].patient_id == patient
    assert events[0].payload.reason == "provider_21610"
    assert events[0].payload.sms_consent is False

    second, alert = decision(patient, to=random_phone()), page(patient, to=random_phone())
    for event in (second, alert):
        await record(n, event)
    await drive(n, lambda: final(ledger_pool))
    assert (await row_of(ledger_pool, second.payload.dedupe_key))["status"] == "suppressed"
    assert await sandbox.messages(second.payload.to) == []
    assert len(await sandbox.messages(alert.payload.to)) == 1  # pages always go out


def envelope(patient_id: str, **payload: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": NOW,
        "recorded_at": NOW,
        "patient_id": patient_id,
        "source": "ingest",
        "payload": payload,
    }


async def test_consent_from_the_patient_stream(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    sender, clock = ScriptedSender(), Clock(NOW)
    n = make_notifier(ledger_pool, sender, producer, clock)
    patient = "p-consent-" + secrets.token_hex(3)
    enrolled = PatientEnrolled.model_validate(
        envelope(
            patient, phone="+15551230001", timezone="America/Chicago", language="en",
            surgery_date="2026-03-02", baseline_severity=3,
            care_team={"on_call": "+15550001111"}, sms_consent=False,
        )
    )  # fmt: skip
    stop = ConsentChanged.model_validate(envelope(patient, sms_consent=False, reason="stop"))
    start = ConsentChanged.model_validate(envelope(patient, sms_consent=True, reason="start"))
    report = SymptomReported.model_validate(envelope(patient, severity=2, channel="app"))

    async def outcome(*events: Any) -> str:
        for e in events:
            await n.on_patient_event(Record(encode_event(e)))
        event = decision(patient, to=random_phone())
        await record(n, event)
        await n.dispatch_once()
        return str((await row_of(ledger_pool, event.payload.dedupe_key))["status"])

    assert await outcome(enrolled) == "suppressed"
    assert await outcome(start) == "sent"
    assert await outcome(report, stop) == "suppressed"
    # Re-enrolling (an update, with sms_consent true) never subscribes them again.
    reenrolled = PatientEnrolled.model_validate(
        {**envelope(patient), "payload": {**enrolled.payload.model_dump(), "sms_consent": True}}
    )
    assert await outcome(reenrolled) == "suppressed"
    await n.on_patient_event(Record(b"{not json"))  # not ours to dead-letter
    await n.on_patient_event(Record(b'{"type": "consent.changed", "payload": 1}'))
    assert await outcome() == "suppressed"
    assert await outcome(start) == "sent"
    alert = page(patient)
    await n.on_patient_event(Record(encode_event(stop)))
    await record(n, alert)
    await n.dispatch_once()
    assert (await row_of(ledger_pool, alert.payload.dedupe_key))["status"] == "sent"


# --- status callbacks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("callbacks", "expected"),
    [
        (["queued", "sent", "delivered"], "delivered"),
        (["delivered", "sent", "queued"], "delivered"),
        (["sent", "undelivered", "delivered"], "failed"),
        (["failed", "sent"], "failed"),
        (["delivered", "failed"], "delivered"),
        (["queued", "sending"], "sent"),
        (["read"], "delivered"),
    ],
)
async def test_status_moves_only_forward(ledger_pool, producer, callbacks, expected) -> None:  # type: ignore[no-untyped-def]
    sender = ScriptedSender()
    n = make_notifier(ledger_pool, sender, producer, Clock(NOW))
    event = decision(to=random_phone())
    await record(n, event)
    await n.dispatch_once()
    sid = sender.sent[0].sid
    for status in callbacks:
        await n.on_provider_event(status_event(sid, status, 30003 if status == "failed" else None))
    row = await row_of(ledger_pool, event.payload.dedupe_key)
    assert row["status"] == expected
    assert row["provider_sid"] == sid


async def test_a_callback_before_the_send_is_recorded_is_kept(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    sender = ScriptedSender()
    n = make_notifier(ledger_pool, sender, producer, Clock(NOW))
    event = decision(to=random_phone())
    await record(n, event)
    sid = "SM" + secrets.token_hex(16)
    await n.on_provider_event(status_event(sid, "delivered"))  # unknown SID yet
    claimed = await ledger.claim_due(ledger_pool, NOW, NOW, FAST.lease, 10)
    await ledger.mark_sent(ledger_pool, claimed[0]["notification_id"], sid, NOW, NOW)
    assert (await row_of(ledger_pool, event.payload.dedupe_key))["status"] == "delivered"


async def test_the_sandbox_callbacks_settle_messages_as_delivered(
    ledger_pool, producer, sandbox: SandboxServer
) -> None:  # type: ignore[no-untyped-def]
    """The provider's own statuses (what its callbacks report), applied in reverse order."""
    n = make_notifier(ledger_pool, sandbox.sender(), producer, Clock(NOW), wall=real_wall)
    phone = random_phone()
    event = decision(to=phone)
    await record(n, event)
    await drive(n, lambda: final(ledger_pool))
    for _ in range(100):
        (message,) = await sandbox.messages(phone)
        if message["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
    for status in ("delivered", "sent", "queued"):
        await n.on_provider_event(status_event(message["sid"], status))
    assert (await row_of(ledger_pool, event.payload.dedupe_key))["status"] == "delivered"


# --- all of it at once -------------------------------------------------------------------------


class HangsAfterNth:
    """The real sender; the ``n``-th successful call never returns (the process dies there)."""

    def __init__(self, inner: SmsSender, n: int) -> None:
        self.inner, self.n, self.calls = inner, n, 0
        self.hung = asyncio.Event()

    async def send(self, to: str, body: str) -> SendResult:
        result = await self.inner.send(to, body)
        self.calls += 1
        if self.calls == self.n:
            self.hung.set()
            await asyncio.Event().wait()
        return result

    async def recent(self, to: str, since: dt.datetime) -> list[ProviderMessage]:
        return await self.inner.recent(to, since)


async def test_faults_and_a_crash_no_text_twice_no_page_lost(
    ledger_pool, producer, sandbox: SandboxServer
) -> None:  # type: ignore[no-untyped-def]
    """429 bursts, 500s, dropped connections and a slow answer past the SDK's timeout, while
    the first notifier dies mid-send and a second one takes over."""
    policy = Policy(
        lease=dt.timedelta(seconds=2),
        verify_delay=dt.timedelta(seconds=2),
        retry_base=0.05,
        retry_cap=0.3,
        reconcile_every=dt.timedelta(seconds=0.2),
    )
    clock = Clock(NOW)
    texts = [decision(f"p-chaos-{i}", to=random_phone()) for i in range(12)]
    pages = [page(f"p-chaos-{i}", to=random_phone(), backup_to=random_phone()) for i in range(3)]
    hangs = HangsAfterNth(sandbox.sender(timeout=0.8), 5)
    n1 = make_notifier(
        ledger_pool, hangs, producer, clock, wall=real_wall, policy=policy, max_attempts=20
    )
    for event in [*texts, *pages]:
        await record(n1, event)

    async def faults() -> None:
        for mode, count, delay in (("429", 5, 0), ("500", 3, 0), ("drop", 3, 0), ("slow", 2, 1500)):
            await sandbox.fault(mode, count, delay)
            for _ in range(400):
                if (await sandbox.http.get("/sandbox/faults")).json()["mode"] == "none":
                    break
                await asyncio.sleep(0.025)

    injector = asyncio.create_task(faults())
    first = asyncio.gather(n1.dispatch_forever(), n1.reconcile_forever())
    await asyncio.wait_for(hangs.hung.wait(), 30)
    first.cancel()  # killed between the provider's answer and the record
    await asyncio.gather(first, return_exceptions=True)

    n2 = make_notifier(
        ledger_pool, sandbox.sender(timeout=0.8), producer, clock, wall=real_wall,
        policy=policy, max_attempts=20,
    )  # fmt: skip
    second = asyncio.gather(n2.dispatch_forever(), n2.reconcile_forever())
    try:
        for _ in range(600):
            if await final(ledger_pool) and injector.done():
                break
            await asyncio.sleep(0.1)
    finally:
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
    await injector
    assert await final(ledger_pool)

    for event in texts:
        sent = await sandbox.messages(event.payload.to)
        assert len(sent) == 1, "a patient text went out twice (or never)"
        row = await row_of(ledger_pool, event.payload.dedupe_key)
        assert row["provider_sid"] == sent[0]["sid"]
        assert row["status"] in {"sent", "delivered"}  # a look-up also learns the status
    for event in pages:
        assert len(await sandbox.messages(event.payload.to)) >= 1  # never lost
        row = await row_of(ledger_pool, event.payload.dedupe_key)
        assert row["status"] in {"sent", "delivered"}
