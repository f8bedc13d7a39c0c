"""The voice channel for pages, on the real PostgreSQL: an alert unacknowledged at its first
escalation step also calls the on-call phone, at the second the backup; calls are retried
through a provider outage like texts; the call reads the alert and gathers the keypress."""

from __future__ import annotations

import secrets

import asyncpg

from notifier.sms import SendError, SendResult
from notifier.voice import ACK_KEY
from shared.events import encode_event
from tests.integration.notifier_support import (
    NOW,
    Clock,
    Record,
    ScriptedSender,
    make_notifier,
    page,
)

ON_CALL, BACKUP = "+15550001111", "+15550002222"


class FakeCaller:
    """The ``Caller`` port: records each call's TwiML; fails while ``down``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.down = False

    async def call(self, to: str, twiml: str) -> SendResult:
        self.calls.append((to, twiml))
        if self.down:
            raise SendError("twilio 503", code=20503, permanent=False, ambiguous=True)
        return SendResult(provider_sid="CA" + secrets.token_hex(16), status="queued")


async def voice_rows(pool: asyncpg.Pool, patient: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT to_phone, status, escalation_step, dedupe_key FROM notifier.notifications"
            " WHERE patient_id = $1 AND channel = 'voice' ORDER BY escalation_step",
            patient,
        )
    )


async def test_an_unanswered_page_calls_the_on_call_then_the_backup(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    sender, clock, caller = ScriptedSender(), Clock(NOW), FakeCaller()
    n = make_notifier(ledger_pool, sender, producer, clock)
    n.caller, n.public_base_url = caller, "https://ingest.example"
    patient = "p-voice-" + secrets.token_hex(3)
    await n.on_record(Record(encode_event(page(patient, to=ON_CALL, backup_to=BACKUP))))
    await n.tick()
    assert caller.calls == []  # the text first
    code = await ledger_pool.fetchval(
        "SELECT ack_code FROM notifier.notifications WHERE patient_id = $1", patient
    )

    clock.advance(minutes=15)
    await n.tick()
    assert [to for to, _ in caller.calls] == [ON_CALL]
    twiml = caller.calls[0][1]
    assert f'action="https://ingest.example/v1/twilio/voice?code={code}"' in twiml
    assert "<Gather action=" in twiml
    assert f"Press {ACK_KEY} to acknowledge." in twiml
    assert "worsening" in twiml or "URGENT" in twiml
    assert "Reply ACK" not in twiml  # said, not texted

    clock.advance(minutes=15)
    await n.tick()
    assert [to for to, _ in caller.calls] == [ON_CALL, BACKUP]
    clock.advance(minutes=15)
    await n.tick()
    assert len(caller.calls) == 2  # two calls per alert: on-call, then backup
    rows = await voice_rows(ledger_pool, patient)
    assert [(r["to_phone"], r["status"], r["escalation_step"]) for r in rows] == [
        (ON_CALL, "sent", 1),
        (BACKUP, "sent", 2),
    ]
    assert rows[0]["dedupe_key"].endswith(":call1")


async def test_calls_are_retried_in_an_outage_and_stop_at_the_ack(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    sender, clock, caller = ScriptedSender(), Clock(NOW), FakeCaller()
    n = make_notifier(ledger_pool, sender, producer, clock, max_attempts=2)
    n.caller, n.public_base_url = caller, "https://ingest.example"
    patient = "p-voice-" + secrets.token_hex(3)
    await n.on_record(Record(encode_event(page(patient, to=ON_CALL, backup_to=BACKUP))))
    await n.tick()
    caller.down = True
    clock.advance(minutes=15)
    for _ in range(4):
        await n.tick()
        clock.advance(seconds=1)
    assert [to for to, _ in caller.calls].count(ON_CALL) == 4  # retried, never failed
    assert {r["status"] for r in await voice_rows(ledger_pool, patient)} <= {"scheduled"}
    caller.down = False
    code = await ledger_pool.fetchval(
        "SELECT ack_code FROM notifier.notifications WHERE patient_id = $1 AND root_id IS NULL",
        patient,
    )
    assert (
        await n.acknowledge(
            await ledger_pool.fetchval(
                "SELECT notification_id FROM notifier.notifications WHERE ack_code = $1"
                " AND root_id IS NULL",
                code,
            )
        )
        == "ok"
    )
    before = len(caller.calls)
    for _ in range(3):
        clock.advance(minutes=15)
        await n.tick()
    assert len(caller.calls) == before
    assert {r["status"] for r in await voice_rows(ledger_pool, patient)} == {"suppressed"}


async def test_without_a_voice_channel_there_are_no_calls(ledger_pool, producer) -> None:  # type: ignore[no-untyped-def]
    sender, clock = ScriptedSender(), Clock(NOW)
    n = make_notifier(ledger_pool, sender, producer, clock)
    patient = "p-voice-" + secrets.token_hex(3)
    await n.on_record(Record(encode_event(page(patient, to=ON_CALL, backup_to=BACKUP))))
    await n.tick()
    clock.advance(minutes=15)
    await n.tick()
    assert await voice_rows(ledger_pool, patient) == []
