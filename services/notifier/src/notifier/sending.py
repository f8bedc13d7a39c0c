"""Sending: claim what is due, text or call it through the provider, settle the outcome
(retry, fail, dead-letter, suppress), and reconcile rows left ``sending``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from notifier import erasure, ledger, ledger_pages
from notifier.base import NotifierBase
from notifier.counters import (
    CALLS,
    CONSENT,
    DEAD,
    DECISION_TO_SEND,
    DUE_TO_SEND,
    RECONCILED,
    SENT,
    TWILIO_LATENCY,
)
from notifier.policy import EPOCH, backoff
from notifier.sms import UNSUBSCRIBED, ProviderMessage, SendError, SendResult
from notifier.templates import with_first_text_footer
from notifier.voice import ack_url, call_twiml
from shared.events import ConsentChanged, ConsentChangedPayload
from shared.kafka import publish
from shared.logs import patient_ref
from shared.supervisor import beat
from shared.topics import DEADLETTER, DECISIONS

log = logging.getLogger(__name__)


class Sending(NotifierBase):
    """The outbox: dispatch and reconciliation rounds."""

    async def dispatch_once(self, limit: int | None = None) -> int:
        rows = await ledger.claim_due(
            self.pool, self.clock(), self.wall(), self.policy.lease, limit or self.policy.batch
        )
        results = await asyncio.gather(*(self._deliver(r) for r in rows), return_exceptions=True)
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                # The row stays ``sending`` and is reconciled once its lease runs out.
                log.warning(
                    "delivery interrupted: %s",
                    type(result).__name__,
                    extra={"notification_id": str(row["notification_id"])},
                )
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> None:
        if row["channel"] == "voice":
            await self._call(row)
            return
        nid, kind = row["notification_id"], row["kind"]
        patient = row["audience"] == "patient"
        if patient and (
            await ledger.is_suppressed(self.pool, row["patient_id"])
            or await erasure.phone_suppressed(self.pool, self.hash_key, row["to_phone"])
        ):
            await ledger.mark_failed(self.pool, nid, "opted out", self.wall(), status="suppressed")
            SENT.labels(kind, "suppressed", "").inc()
            return
        if row["verify_before_send"]:
            try:
                found = await self._lookup(row)
            except SendError as exc:
                await self._retry_later(row, exc, verify=True)
                return
            if found is not None:
                await self._settle_found(row, found)
                RECONCILED.labels("found_before_retry").inc()
                return
        body = row["body"]
        if patient and not await ledger.has_prior_text(self.pool, row["to_phone"], nid):
            body = with_first_text_footer(body, row["language"])
        result = await self._attempt(row, body, lambda: self.sender.send(row["to_phone"], body))
        if result is None:
            return
        await ledger.mark_sent(
            self.pool,
            nid,
            result.provider_sid,
            self.clock(),
            self.wall(),
            escalate_after=self._ack_timer(row),
        )
        SENT.labels(kind, "sent", "").inc()
        now = self.clock()
        DECISION_TO_SEND.labels(row["audience"]).observe(
            max(0.0, (now - row["created_at"]).total_seconds())
        )
        DUE_TO_SEND.labels(row["audience"]).observe(
            max(0.0, (now - row["scheduled_for"]).total_seconds())
        )
        log.info(
            "notification sent",
            extra={
                "notification_id": str(nid),
                "kind": kind,
                "patient": patient_ref(row["patient_id"]),
            },
        )

    async def _call(self, row: asyncpg.Record) -> None:
        """A page's phone call: the same queue, retries and escalation as its texts."""
        nid = row["notification_id"]
        if self.caller is None:
            await ledger.mark_failed(
                self.pool, nid, "no voice channel", self.wall(), status="suppressed"
            )
            return
        twiml = call_twiml(
            row["body"], ack_url(self.public_base_url, row["ack_code"]), row["language"]
        )
        caller = self.caller
        result = await self._attempt(row, row["body"], lambda: caller.call(row["to_phone"], twiml))
        if result is None:
            return
        await ledger.mark_sent(self.pool, nid, result.provider_sid, self.clock(), self.wall())
        CALLS.labels("placed").inc()
        log.info("page call placed", extra={"notification_id": str(nid)})

    async def _attempt(
        self, row: asyncpg.Record, body: str, provider_call: Callable[[], Awaitable[SendResult]]
    ) -> SendResult | None:
        """One call to the provider for ``row`` (a text or a voice call): the call's start is
        recorded first (what reconciliation looks up), and a failure is settled by
        ``_on_send_error``; ``None`` then."""
        await ledger.begin_call(self.pool, row["notification_id"], body, self.wall())
        try:
            with TWILIO_LATENCY.time():
                return await provider_call()
        except SendError as exc:
            await self._on_send_error(row, exc)
            return None

    def _ack_timer(self, row: asyncpg.Record) -> dt.timedelta | None:
        if self._is_page(row) and row["root_id"] is None:
            return self.policy.ack_timeout
        return None

    async def _on_send_error(self, row: asyncpg.Record, exc: SendError) -> None:
        nid, kind = row["notification_id"], row["kind"]
        code = str(exc.code or "")
        wall = self.wall()
        page = self._is_page(row)
        if page and (exc.permanent or row["attempts"] == self.max_attempts):
            # First, before anything that can fail: the alert moves on to its next step now.
            await ledger_pages.escalate_now(self.pool, nid, self.clock())
            self.wake.set()
        if exc.permanent:
            if row["audience"] == "patient" and exc.code == UNSUBSCRIBED:
                await ledger.mark_failed(
                    self.pool, nid, str(exc), wall, status="suppressed", error_code=exc.code
                )
                await self._opted_out_at_provider(row)
                SENT.labels(kind, "suppressed", code).inc()
            else:
                await ledger.mark_failed(self.pool, nid, str(exc), wall, error_code=exc.code)
                SENT.labels(kind, "failed", code).inc()
            log.warning(
                "notification failed", extra={"notification_id": str(nid), "error": str(exc)}
            )
        elif page:
            # Never final while its alert is open: retried with capped back-off.
            await self._retry_later(row, exc, verify=False)
            SENT.labels(kind, "retry", code).inc()
            if row["attempts"] == self.max_attempts:
                log.warning(
                    "page still undelivered after %d attempts: escalated, still retrying",
                    row["attempts"],
                    extra={"notification_id": str(nid), "error": str(exc)},
                )
        elif row["attempts"] >= self.max_attempts:
            await ledger.mark_failed(self.pool, nid, str(exc), wall, error_code=exc.code)
            SENT.labels(kind, "failed", code).inc()
            log.warning(
                "notification failed after %d attempts",
                row["attempts"],
                extra={"notification_id": str(nid), "error": str(exc)},
            )
            DEAD.labels("retries_exhausted").inc()
            await self.producer.send_and_wait(
                DEADLETTER,
                key=row["patient_id"].encode(),
                value=json.dumps(
                    {
                        "notification_id": str(nid),
                        "dedupe_key": row["dedupe_key"],
                        "kind": kind,
                        "audience": row["audience"],
                        "attempts": row["attempts"],
                        "error": str(exc),
                    }
                ).encode(),
                headers=[("reason", b"retries exhausted"), ("topic", DECISIONS.encode())],
            )
        else:
            await self._retry_later(row, exc, verify=row["audience"] == "patient" and exc.ambiguous)
            SENT.labels(kind, "retry", code).inc()

    async def _retry_later(self, row: asyncpg.Record, exc: SendError, *, verify: bool) -> None:
        wall = self.wall()
        delay = backoff(row["attempts"], self.policy.retry_base, self.policy.retry_cap)
        if verify:
            delay = max(delay, self.policy.verify_delay)
        await ledger.reschedule(
            self.pool,
            row["notification_id"],
            wall + delay,
            str(exc),
            wall,
            verify_before_send=verify,
        )
        log.info(
            "notification will be retried in %.1f s%s: %s",
            delay.total_seconds(),
            " after a look-up at the provider" if verify else "",
            exc,
            extra={"notification_id": str(row["notification_id"])},
        )

    async def _opted_out_at_provider(self, row: asyncpg.Record) -> None:
        """Twilio 21610: the patient opted out at the carrier. Suppress here at once, and tell
        the assessor through the patient stream."""
        now = self._event_time()
        event = ConsentChanged(
            event_id=uuid.uuid5(row["notification_id"], "provider_21610"),
            occurred_at=now,
            recorded_at=now,
            patient_id=row["patient_id"],
            source="notifier",
            payload=ConsentChangedPayload(sms_consent=False, reason="provider_21610"),
        )
        await ledger.set_consent(
            self.pool, row["patient_id"], False, "provider_21610", now, event.event_id
        )
        await publish(self.producer, self.patient_topic, event)
        CONSENT.labels("provider_21610").inc()

    # -- reconciliation ---------------------------------------------------------------------------

    async def _lookup(self, row: asyncpg.Record) -> ProviderMessage | None:
        """The provider's message for this row's last call, if it made one: same phone, same
        body, created since the call began, and not already another row's."""
        started = row["call_started_at"]
        if started is None:
            return None  # the provider was never called
        listed = await self.sender.recent(row["to_phone"], started - self.policy.clock_skew)
        same = [m for m in listed if m.body == row["body"]]
        if not same:
            return None
        taken = await ledger.known_sids(self.pool, [m.sid for m in same])
        free = [m for m in same if m.sid not in taken]
        free.sort(key=lambda m: m.date_created or EPOCH)
        return free[0] if free else None

    async def _settle_found(self, row: asyncpg.Record, found: ProviderMessage) -> None:
        await ledger.mark_sent(
            self.pool,
            row["notification_id"],
            found.sid,
            self.clock(),
            self.wall(),
            escalate_after=self._ack_timer(row),
        )
        await ledger.apply_provider_status(self.pool, found.sid, found.status, None, self.wall())
        SENT.labels(row["kind"], "sent", "").inc()

    async def reconcile_once(self) -> int:
        """Rows left ``sending`` past their lease: look each up at the provider. Found: record
        it. Not there: schedule it again. Lookup failed: a page is resent (a rare duplicate
        beats a miss); a patient text waits for the next round."""
        wall = self.wall()
        rows = await ledger.claim_stale(self.pool, wall, self.policy.lease, self.policy.batch)
        for row in rows:
            beat()
            nid = row["notification_id"]
            try:
                found = await self._lookup(row)
            except SendError as exc:
                if row["audience"] == "care_team":
                    await ledger.reschedule(
                        self.pool, nid, wall, f"reconcile: {exc}", wall, verify_before_send=False
                    )
                    RECONCILED.labels("page_resent_unverified").inc()
                else:
                    RECONCILED.labels("lookup_failed").inc()
                    log.warning(
                        "reconciliation lookup failed: %s", exc, extra={"notification_id": str(nid)}
                    )
                continue
            if found is not None:
                await self._settle_found(row, found)
                RECONCILED.labels("found").inc()
            else:
                await ledger.reschedule(
                    self.pool,
                    nid,
                    wall,
                    "reconcile: not at the provider",
                    wall,
                    verify_before_send=False,
                )
                RECONCILED.labels("not_found").inc()
            log.info(
                "reconciled a message left sending",
                extra={"notification_id": str(nid), "found": found is not None},
            )
        if rows:
            self.wake.set()
        return len(rows)
