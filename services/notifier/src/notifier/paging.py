"""Paging: what happens to a care-team alert once sent: provider status callbacks, ``ACK``
texts and acknowledgements, and escalation to the backup, reminders and incidents."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from notifier import ledger, ledger_pages, ledger_reads
from notifier.base import NotifierBase
from notifier.counters import ACKS_THROTTLED, ESCALATIONS, INCIDENTS, PROVIDER_EVENTS_SEEN, SENT
from notifier.policy import backoff
from notifier.templates import render
from shared.audit import sms_actor
from shared.errors import describe
from shared.events import AckReceived, MessageStatusReported, parse_event
from shared.logs import patient_ref
from shared.topics import PROVIDER_EVENTS

log = logging.getLogger(__name__)


class Paging(NotifierBase):
    """Provider events, acknowledgements and escalation rounds."""

    async def on_provider_event(self, rec: ConsumerRecord[Any, Any]) -> None:
        """Status callbacks and ``ACK <code>`` texts from ``provider-events.v1``."""
        try:
            event = parse_event(rec.value)
        except ValidationError as exc:
            PROVIDER_EVENTS_SEEN.labels("invalid", "dead_letter").inc()
            await self._dead_letter(rec, PROVIDER_EVENTS, describe(exc))
            return
        if isinstance(event, MessageStatusReported):
            p = event.payload
            row = await ledger.apply_provider_status(
                self.pool, p.message_sid, p.status, p.error_code, self.wall()
            )
            PROVIDER_EVENTS_SEEN.labels("status", "applied" if row else "unchanged").inc()
            if (
                row is not None
                and row["status"] == "failed"
                and row["audience"] == "care_team"
                and row["urgency"] == "urgent"
                and row["acknowledged_at"] is None
            ):
                # First the alert's next step, then this text again (never final while the
                # alert is open), no sooner than the verify delay: the carrier refused it.
                await ledger_pages.escalate_now(self.pool, row["notification_id"], self.clock())
                wall = self.wall()
                delay = max(
                    backoff(row["attempts"], self.policy.retry_base, self.policy.retry_cap),
                    self.policy.verify_delay,
                )
                if await ledger.resend_undelivered_page(
                    self.pool, row["notification_id"], wall + delay, wall
                ):
                    SENT.labels(row["kind"], "retry", str(p.error_code or "")).inc()
                self.wake.set()
        elif isinstance(event, AckReceived):
            await self._on_ack(event)

    async def _on_ack(self, event: AckReceived) -> None:
        """``ACK <code>`` by SMS. A phone that texted too many wrong codes lately is ignored
        for a while (codes are short enough to type, so guessing must be slow)."""
        phone, wall = event.payload.from_phone, self.wall()
        since = wall - self.policy.ack_window
        if (
            await ledger_pages.ack_failures_since(self.pool, phone, since)
            >= self.policy.ack_failures
        ):
            ACKS_THROTTLED.inc()
            PROVIDER_EVENTS_SEEN.labels("ack", "throttled").inc()
            log.warning("ACK ignored: too many wrong codes from that phone lately")
            return
        root = await ledger_pages.acknowledge_by_code(
            self.pool, event.payload.ack_code, phone, self.clock(), wall
        )
        if root is None:
            await ledger_pages.record_ack_failure(self.pool, phone, wall, self.policy.ack_window)
        elif self.audit is not None:
            # After the acknowledgement (idempotent): if the audit cannot be written the event
            # is handled again until it is.
            owner = await ledger_reads.notification_owner(self.pool, root)
            await self.audit.record(
                sms_actor(patient_ref(phone)),
                "page.ack",
                "allowed",
                patient_id=owner[0] if owner else None,
                resource=f"notification/{root}",
                source="sms",
            )
        PROVIDER_EVENTS_SEEN.labels("ack", "acknowledged" if root else "no_match").inc()
        log.info(
            "page acknowledged by SMS" if root else "ACK matched no page of that phone",
            extra={"notification_id": str(root) if root else None},
        )

    def _call_words(self, root: asyncpg.Record) -> str:
        """What a page's call says: the page without its SMS reply instruction."""
        facts = self._page_facts(ledger.facts_of(root), root["patient_id"], root["rule"])
        return render(root["kind"], root["language"], facts, self.clinic)

    def _render_escalation(self, root: asyncpg.Record, step: int) -> str:
        facts = self._page_facts(ledger.facts_of(root), root["patient_id"], root["rule"])
        return render(
            root["kind"],
            root["language"],
            facts,
            self.clinic,
            ack_code=root["ack_code"],
            escalation_step=step,
        )

    async def escalate_once(self) -> int:
        done = await ledger_pages.escalate_due(
            self.pool,
            self.clock(),
            self.wall(),
            interval=self.policy.escalation_interval,
            repeats=self.policy.escalation_repeats,
            render=self._render_escalation,
            call=self._call_words if self.caller is not None else None,
        )
        if any(not esc.incident for esc in done):
            self.wake.set()  # new escalation texts are due now
        for esc in done:
            if esc.incident:
                INCIDENTS.labels("yes" if esc.reached else "no").inc()
                log.error(
                    "urgent alert unanswered after its last reminder%s",
                    "" if esc.reached else ": none of its texts was reported delivered",
                    extra={"notification_id": str(esc.root["notification_id"])},
                )
                continue
            ESCALATIONS.labels(str(esc.step)).inc()
            log.info(
                "page escalated",
                extra={"notification_id": str(esc.root["notification_id"]), "step": esc.step},
            )
        return len(done)

    async def acknowledge(self, notification_id: uuid.UUID) -> ledger_pages.AckOutcome:
        return await ledger_pages.acknowledge(self.pool, notification_id, self.clock(), self.wall())
