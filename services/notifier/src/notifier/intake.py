"""Intake: decisions from ``decisions.v1`` recorded once (each rendered once), consent and
erasure from ``patient-events.v1``, and the simulated clock."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import asyncpg
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from notifier import erasure, ledger
from notifier.base import Handler, NotifierBase
from notifier.counters import CONSENT, CONSUMED
from notifier.policy import SimulatedClock
from notifier.templates import TEMPLATES, render
from shared.crypto import KeyUnavailable
from shared.errors import describe
from shared.events import (
    ClockAdvanced,
    ConsentChanged,
    ErasureProgressed,
    ErasureProgressedPayload,
    ErasureStore,
    PatientEnrolled,
    PatientErased,
    SendNotification,
    parse_event,
)
from shared.kafka import publish
from shared.logs import patient_ref
from shared.supervisor import beat
from shared.topics import DECISIONS, ERASURE_EVENTS, PATIENT_EVENTS

log = logging.getLogger(__name__)


class Intake(NotifierBase):
    """The handlers of the decisions, patient-events and clock topics."""

    async def on_record(self, rec: ConsumerRecord[Any, Any]) -> None:
        try:
            event = await self._decode(rec.value)
        except KeyUnavailable:
            CONSUMED.labels("erased").inc()  # a decision about an erased patient
            return
        except (ValidationError, ValueError) as exc:
            CONSUMED.labels("dead_letter").inc()
            log.warning(
                "undecodable decision sent to the dead-letter topic: %s", type(exc).__name__
            )
            await self._dead_letter(rec, DECISIONS, describe(exc))
            return
        try:
            if not isinstance(event, SendNotification):
                raise ValueError(f"unexpected event type {event.type} on {DECISIONS}")
            if event.payload.kind not in TEMPLATES:  # a kind this notifier has no words for
                raise KeyError(event.payload.kind)
        except (ValidationError, ValueError, KeyError) as exc:
            CONSUMED.labels("dead_letter").inc()
            log.warning(
                "undecodable decision sent to the dead-letter topic: %s", type(exc).__name__
            )
            await self._dead_letter(rec, DECISIONS, describe(exc))
            return
        inserted = await self._record(event)
        CONSUMED.labels("recorded" if inserted else "duplicate").inc()
        log.info(
            "decision recorded",
            extra={
                "event_id": str(event.event_id),
                "kind": event.payload.kind,
                "patient": patient_ref(event.patient_id),
                "duplicate": not inserted,
            },
        )

    async def _record(self, event: SendNotification) -> bool:
        p = event.payload
        created = max(self.clock(), event.recorded_at)  # the simulated clock may lag
        # Each decision is rendered here, once: every send, retry and reconciliation after
        # this uses the stored body. Only a page renders again, and only where the words
        # genuinely differ: with another ack code (below, when one is taken), as an
        # escalation reminder (its step number) and as a call script (no SMS reply line).
        if p.audience != "care_team":
            body = render(p.kind, p.language, p.facts, self.clinic)
            return await ledger.record(self.pool, event, body, created)
        if await ledger.exists(self.pool, p.dedupe_key):
            return False
        facts = self._page_facts(p.facts, event.patient_id, p.rule)
        escalate_at = (
            max(created, p.due_at) + self.policy.ack_timeout if p.urgency == "urgent" else None
        )
        for _ in range(10):  # a fresh code when one is taken by another open alert
            code = ledger.new_ack_code()
            # The code is in the words ("Reply ACK <code>"): a new code is a new body.
            body = render(p.kind, p.language, facts, self.clinic, ack_code=code)
            try:
                return await ledger.record(
                    self.pool, event, body, created, ack_code=code, escalate_at=escalate_at
                )
            except asyncpg.UniqueViolationError:
                continue
        raise RuntimeError("no free acknowledgement code")

    async def on_patient_event(self, rec: ConsumerRecord[Any, Any]) -> None:
        """Consent from ``patient-events.v1``: only enrollments and consent changes."""
        try:
            kind = json.loads(rec.value).get("type")
        except (ValueError, AttributeError, TypeError):
            kind = None
        if kind not in ("patient.enrolled", "consent.changed", "patient.erased"):
            return  # other types, and garbage (the assessor dead-letters that), are not ours
        try:
            event = await self._decode(rec.value)
        except KeyUnavailable:
            return  # an erased patient's enrollment
        except (ValidationError, ValueError):
            log.warning("invalid %s on %s ignored", kind, PATIENT_EVENTS)
            return
        if isinstance(event, PatientErased):
            await self._erase(event)
        elif isinstance(event, PatientEnrolled):
            await erasure.enrolled_again(self.pool, event.patient_id)
            # Only the first enrollment sets consent; an update never changes it.
            if await ledger.set_consent(
                self.pool,
                event.patient_id,
                event.payload.sms_consent,
                "enrollment",
                event.recorded_at,
                event.event_id,
                only_if_absent=True,
            ):
                CONSENT.labels("enrollment").inc()
            await ledger.set_team(
                self.pool, event.patient_id, event.payload.care_team.team, event.recorded_at
            )
        elif isinstance(event, ConsentChanged):
            await ledger.set_consent(
                self.pool,
                event.patient_id,
                event.payload.sms_consent,
                event.payload.reason,
                event.recorded_at,
                event.event_id,
            )
            CONSENT.labels(event.payload.reason).inc()

    async def _erase(self, event: PatientErased) -> None:
        """The provider's copies first (their SIDs are in the ledger), then the ledger;
        each reported. A provider outage is waited out: the erasure is not done without it."""
        patient_id = event.patient_id
        sids, phones = await erasure.provider_copies(self.pool, patient_id)
        deleted = 0
        if self.eraser is not None:
            delay = 0.5
            while True:
                try:
                    deleted = await self.eraser.erase(sids, phones)
                    break
                except erasure.ProviderUnavailable as exc:
                    log.warning("provider erasure retried: %s", exc)
                    beat()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
        removed = await erasure.erase_ledger(self.pool, patient_id, self.hash_key, self.wall())
        if self.codec is not None:
            self.codec.keyring.forget(patient_id)
        await self._report_erased(event, "provider", deleted)
        await self._report_erased(event, "notifier", removed)
        log.info(
            "patient erased in the notifier and at the provider",
            extra={"patient": patient_ref(patient_id), "messages_deleted": deleted},
        )

    async def _report_erased(self, event: PatientErased, store: ErasureStore, count: int) -> None:
        now = self.wall()
        report = ErasureProgressed(
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"erasure:{event.event_id}:{store}"),
            occurred_at=now,
            recorded_at=now,
            patient_id=event.patient_id,
            source="notifier",
            payload=ErasureProgressedPayload(
                erasure_id=event.event_id, store=store, outcome="done", removed=count
            ),
        )
        await publish(self.producer, ERASURE_EVENTS, report, codec=self.codec)

    def on_clock_event(self, clock: SimulatedClock) -> Handler:
        async def handle(rec: ConsumerRecord[Any, Any]) -> None:
            try:
                event = parse_event(rec.value)
            except ValidationError:
                log.warning("invalid event on the clock topic ignored")
                return
            if isinstance(event, ClockAdvanced) and await clock.advance(
                self.pool, event.payload.now
            ):
                self.wake.set()

        return handle
