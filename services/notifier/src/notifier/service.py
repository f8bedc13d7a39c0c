"""The notifier's loops: record decisions, keep consent, provider statuses, acknowledgements
and the simulated clock from Kafka, and dispatch, reconcile and escalate what is due."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from notifier import erasure, ledger
from notifier.sms import UNSUBSCRIBED, ProviderMessage, SendError, SmsSender
from notifier.templates import TEMPLATES, render, with_first_text_footer
from notifier.voice import Caller, ack_url, call_twiml
from shared.audit import AuditTrail, sms_actor
from shared.crypto import KEY_SERVICE_DOWN, EventCodec, KeyUnavailable
from shared.errors import describe
from shared.events import (
    AckReceived,
    ClockAdvanced,
    ConsentChanged,
    ConsentChangedPayload,
    ErasureProgressed,
    ErasureProgressedPayload,
    ErasureStore,
    Event,
    MessageStatusReported,
    PatientEnrolled,
    PatientErased,
    SendNotification,
    parse_event,
)
from shared.kafka import publish
from shared.logs import patient_ref
from shared.supervisor import Loop, beat
from shared.topics import DEADLETTER, DECISIONS, ERASURE_EVENTS, PATIENT_EVENTS, PROVIDER_EVENTS
from shared.transient import is_transient

log = logging.getLogger(__name__)

CONSUMED = Counter("notifier_events_total", "Decisions consumed", ["outcome"])
SENT = Counter("notifier_notifications_total", "Send outcomes", ["kind", "status", "error_code"])
DEAD = Counter("notifier_dead_letters_total", "Messages sent to the dead-letter topic", ["reason"])
TWILIO_LATENCY = Histogram("notifier_twilio_seconds", "Twilio API call latency")
RECONCILED = Counter(
    "notifier_reconciled_total", "Messages left sending, looked up at the provider", ["outcome"]
)
PROVIDER_EVENTS_SEEN = Counter(
    "notifier_provider_events_total", "Status callbacks and ACKs consumed", ["type", "outcome"]
)
ESCALATIONS = Counter("notifier_escalations_total", "Page escalation steps", ["step"])
INCIDENTS = Counter(
    "notifier_page_incidents_total",
    "Urgent alerts still unacknowledged after their last reminder (reached: whether any of"
    " their texts was reported delivered)",
    ["reached"],
)
CALLS = Counter("notifier_page_calls_total", "Page phone calls by outcome", ["outcome"])
ACKS_THROTTLED = Counter(
    "notifier_acks_throttled_total", "ACK texts ignored: too many wrong codes from that phone"
)
CONSENT = Counter("notifier_consent_changes_total", "Suppression list updates", ["reason"])
COMMITS_REFUSED = Counter(
    "notifier_commits_refused_total", "Offset commits refused after a rebalance (redelivered)"
)
_WAIT_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)
DECISION_TO_SEND = Histogram(
    "notifier_decision_to_send_seconds",
    "Business-clock time from recording a decision to the provider's accept (includes deferral"
    " out of quiet hours)",
    ["audience"],
    buckets=_WAIT_BUCKETS,
)
DUE_TO_SEND = Histogram(
    "notifier_due_to_send_seconds",
    "Business-clock lateness: from a notification's due time to the provider's accept",
    ["audience"],
    buckets=_WAIT_BUCKETS,
)
for _outcome in ("recorded", "duplicate", "dead_letter"):
    CONSUMED.labels(_outcome)
for _reason in ("invalid", "retries_exhausted"):
    DEAD.labels(_reason)
for _status in ("sent", "failed", "suppressed", "retry"):
    SENT.labels("reassurance", _status, "")
ESCALATIONS.labels("1")
CALLS.labels("placed")
for _reached in ("yes", "no"):
    INCIDENTS.labels(_reached)
for _reason in ("enrollment", "stop", "provider_21610"):
    CONSENT.labels(_reason)
for _type, _outcome in (("status", "applied"), ("ack", "acknowledged")):
    PROVIDER_EVENTS_SEEN.labels(_type, _outcome)
for _audience in ("patient", "care_team"):
    DECISION_TO_SEND.labels(_audience)
    DUE_TO_SEND.labels(_audience)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: What a database outage raises. Besides server errors and broken sockets, a connection
#: the server dropped mid-query can be left "in another operation": the next query on it
#: fails with ``InternalClientError`` (seen in the PostgreSQL drill, where it ended the
#: clock loop for good); the pool replaces that connection, so it is retried like the rest.
DATABASE_DOWN = (
    TimeoutError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def backoff(attempt: int, base: float = 2.0, cap: float = 300.0) -> dt.timedelta:
    """Exponential backoff with full jitter for retry ``attempt`` (1-based)."""
    ceiling = min(cap, base * 2 ** min(attempt - 1, 40))  # pages retry without end
    return dt.timedelta(seconds=random.uniform(0, ceiling))  # noqa: S311


@dataclass(frozen=True)
class Policy:
    """Timings; the business ones (acknowledgement, escalation) run on the injected clock,
    the technical ones (lease, retries, verification) on the wall clock."""

    #: How long a claimed row may stay ``sending`` before it is reconciled.
    lease: dt.timedelta = dt.timedelta(seconds=120)
    #: After an ambiguous failure, wait at least this long before looking a patient text
    #: up at the provider (and resending only if it is not there).
    verify_delay: dt.timedelta = dt.timedelta(seconds=30)
    #: Reconciliation may miss a message whose provider timestamp is this much off ours.
    clock_skew: dt.timedelta = dt.timedelta(minutes=5)
    ack_timeout: dt.timedelta = dt.timedelta(minutes=15)
    escalation_interval: dt.timedelta = dt.timedelta(minutes=15)
    escalation_repeats: int = 3
    reconcile_every: dt.timedelta = dt.timedelta(seconds=5)
    retry_base: float = 2.0
    #: Pages are retried for as long as their alert is open, at most this far apart.
    retry_cap: float = 300.0
    batch: int = 20
    #: Wrong ACK codes a phone may text within ``ack_window`` before its ACKs are ignored.
    ack_failures: int = 5
    ack_window: dt.timedelta = dt.timedelta(minutes=15)


class SimulatedClock:
    """The business clock when ``SIMULATED_CLOCK=1``: the latest ``clock.advanced`` consumed,
    kept in ``notifier.clock`` across restarts. Before any, it reads 1970 (nothing is due)."""

    def __init__(self, now: dt.datetime | None = None) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now or EPOCH

    async def load(self, pool: asyncpg.Pool) -> None:
        stored = await ledger.load_clock(pool)
        if stored is not None and (self.now is None or stored > self.now):
            self.now = stored

    async def advance(self, pool: asyncpg.Pool, to: dt.datetime) -> bool:
        before = self.now
        self.now = await ledger.advance_clock(pool, to)
        return before != self.now


Handler = Callable[[ConsumerRecord[Any, Any]], Awaitable[None]]


class Notifier:
    def __init__(
        self,
        pool: asyncpg.Pool,
        sender: SmsSender,
        producer: AIOKafkaProducer,
        clock: Callable[[], dt.datetime],
        *,
        clinic: str,
        max_attempts: int,
        interval: float,
        wall: Callable[[], dt.datetime] = utcnow,
        policy: Policy | None = None,
        audit: AuditTrail | None = None,
        caller: Caller | None = None,
        public_base_url: str = "",
        codec: EventCodec | None = None,
        eraser: erasure.MessageEraser | None = None,
        hash_key: bytes = b"",
    ) -> None:
        self.pool = pool
        #: Opens the patient fields of events (None: plain events only, as in some tests).
        self.codec = codec
        self.eraser = eraser
        #: Keys the hashed phones left on the suppression list by an erasure.
        self.hash_key = hash_key
        self.audit = audit
        self.sender = sender
        #: The voice channel for pages (None: texts only).
        self.caller = caller
        self.public_base_url = public_base_url
        self.producer = producer
        self.clock = clock
        self.wall = wall
        self.clinic = clinic
        self.max_attempts = max_attempts
        self.interval = interval
        self.policy = policy or Policy()
        self.wake = asyncio.Event()
        self._last_reconcile = EPOCH
        self.patient_topic = PATIENT_EVENTS

    # -- consuming ------------------------------------------------------------------------------

    async def consume(self, consumer: AIOKafkaConsumer) -> None:
        """Decisions from ``decisions.v1``."""
        await self.consume_topic(consumer, self.on_record)

    async def consume_topic(
        self, consumer: AIOKafkaConsumer, handle: Handler, *, commit: bool = True
    ) -> None:
        """Handle every record, then commit the batch's offsets (only after all are done).
        A restart (after a crash mid-batch) first goes back to the committed offsets (without
        commits: to the beginning), so no record fetched but not handled is skipped."""
        await self._rewind(consumer, to_committed=commit)
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            for records in batches.values():
                for rec in records:
                    await self._until_done(handle, rec)
            if batches:
                if commit:
                    await self._commit(consumer)
                self.wake.set()
            beat()

    @staticmethod
    async def _rewind(consumer: AIOKafkaConsumer, *, to_committed: bool) -> None:
        for tp in consumer.assignment():
            committed = await consumer.committed(tp) if to_committed else None
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit what was handled. After a stall longer than the group's session (a paused
        process, CPU starvation) the group has moved on and the commit fails: the records
        go to whoever owns their partition now, and are handled again (idempotently) there
        or here. Carrying on, not dying, is what keeps this loop alive."""
        try:
            await consumer.commit()
        except (CommitFailedError, IllegalStateError) as exc:
            COMMITS_REFUSED.inc()
            log.warning("offset commit refused after a rebalance: %s", type(exc).__name__)

    async def _until_done(self, handle: Handler, rec: ConsumerRecord[Any, Any]) -> None:
        """Never skip an event: while the database is down, wait and try again. A database
        error that is not an outage (a value it refuses) fails the same way every time:
        that record is dead-lettered, so it cannot hold the partition behind it."""
        delay = 0.5
        while True:
            try:
                await handle(rec)
                return
            except DATABASE_DOWN as exc:
                if not is_transient(exc):
                    log.error("record not applied, dead-lettered: %s", type(exc).__name__)
                    await self._dead_letter(rec, rec.topic, f"not applied: {describe(exc)}")
                    return
                log.warning("ledger unavailable, retrying: %s", type(exc).__name__)
                beat()  # waiting for the database is not being stuck
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _dead_letter(self, rec: ConsumerRecord[Any, Any], topic: str, reason: str) -> None:
        DEAD.labels("invalid").inc()
        await self.producer.send_and_wait(
            DEADLETTER,
            value=rec.value,
            key=rec.key,
            headers=[("reason", reason[:500].encode()), ("topic", topic.encode())],
        )

    def _event_time(self) -> dt.datetime:
        now = self.clock()
        return now if now > EPOCH else self.wall()

    async def _decode(self, raw: bytes) -> Event:
        """The event with its patient fields opened; waits while the key service is down
        (never skips). ``KeyUnavailable``: the patient was erased."""
        if self.codec is None:
            return parse_event(raw)
        delay = 0.2
        while True:
            try:
                return await self.codec.decode(raw)
            except KEY_SERVICE_DOWN as exc:
                log.warning("data keys unavailable, retrying: %s", type(exc).__name__)
                beat()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

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

    @staticmethod
    def _page_facts(
        facts: dict[str, Any], patient_id: str | None, rule: str | None
    ) -> dict[str, Any]:
        out = dict(facts)
        if out.get("patient_id") is None and patient_id:
            out["patient_id"] = patient_id
        if out.get("rule") is None and rule:
            out["rule"] = rule
        return out

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
                await ledger.escalate_now(self.pool, row["notification_id"], self.clock())
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
        if await ledger.ack_failures_since(self.pool, phone, since) >= self.policy.ack_failures:
            ACKS_THROTTLED.inc()
            PROVIDER_EVENTS_SEEN.labels("ack", "throttled").inc()
            log.warning("ACK ignored: too many wrong codes from that phone lately")
            return
        root = await ledger.acknowledge_by_code(
            self.pool, event.payload.ack_code, phone, self.clock(), wall
        )
        if root is None:
            await ledger.record_ack_failure(self.pool, phone, wall, self.policy.ack_window)
        elif self.audit is not None:
            # After the acknowledgement (idempotent): if the audit cannot be written the event
            # is handled again until it is.
            owner = await ledger.notification_owner(self.pool, root)
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

    # -- dispatching ----------------------------------------------------------------------------

    def loops(
        self, consumers: dict[str, AIOKafkaConsumer], clock: SimulatedClock | None
    ) -> dict[str, Loop]:
        """Every background loop of the notifier, by name, for the supervisor: decisions,
        consent and provider events, the clock (simulated only), and dispatch, escalation
        and reconciliation, each on its own so no failure in one holds up another."""
        out: dict[str, Loop] = {
            "decisions": lambda: self.consume(consumers["decisions"]),
            "consent": lambda: self.consume_topic(consumers["consent"], self.on_patient_event),
            "provider-events": lambda: self.consume_topic(
                consumers["provider"], self.on_provider_event
            ),
            "dispatch": self.dispatch_forever,
            "escalation": self.escalate_forever,
            "reconciliation": self.reconcile_forever,
        }
        if clock is not None:
            out["clock"] = lambda: self.consume_topic(
                consumers["clock"], self.on_clock_event(clock), commit=False
            )
        return out

    async def _forever(self, name: str, once: Callable[[], Awaitable[int]], idle: float) -> None:
        """``once`` round after round; transient failures (database down) pause it."""
        while True:
            beat()
            try:
                done = await once()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("%s paused: %s", name, type(exc).__name__)
                done = 0
            if not done:
                await asyncio.sleep(max(idle, 0.05))

    async def dispatch_forever(self) -> None:
        while True:
            beat()
            try:
                sent = await self.dispatch_once()
            except DATABASE_DOWN as exc:
                log.warning("dispatch paused: %s", type(exc).__name__)
                sent = 0
            if not sent:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.interval)
                self.wake.clear()

    async def escalate_forever(self) -> None:
        await self._forever("escalation", self.escalate_once, self.interval)

    async def reconcile_forever(self) -> None:
        await self._forever(
            "reconciliation", self.reconcile_once, self.policy.reconcile_every.total_seconds()
        )

    async def tick(self) -> int:
        """One round: escalate (first: nothing below may hold it up), reconcile (now and
        then), dispatch."""
        await self.escalate_once()
        wall = self.wall()
        if wall - self._last_reconcile >= self.policy.reconcile_every:
            self._last_reconcile = wall
            await self.reconcile_once()
        return await self.dispatch_once()

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

    def _is_page(self, row: asyncpg.Record) -> bool:
        return bool(row["audience"] == "care_team" and row["urgency"] == "urgent")

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
        await ledger.begin_call(self.pool, nid, body, self.wall())
        try:
            with TWILIO_LATENCY.time():
                result = await self.sender.send(row["to_phone"], body)
        except SendError as exc:
            await self._on_send_error(row, exc)
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
        await ledger.begin_call(self.pool, nid, row["body"], self.wall())
        try:
            with TWILIO_LATENCY.time():
                result = await self.caller.call(row["to_phone"], twiml)
        except SendError as exc:
            await self._on_send_error(row, exc)
            return
        await ledger.mark_sent(self.pool, nid, result.provider_sid, self.clock(), self.wall())
        CALLS.labels("placed").inc()
        log.info("page call placed", extra={"notification_id": str(nid)})

    def _call_words(self, root: asyncpg.Record) -> str:
        """What a page's call says: the page without its SMS reply instruction."""
        facts = self._page_facts(ledger.facts_of(root), root["patient_id"], root["rule"])
        return render(root["kind"], root["language"], facts, self.clinic)

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
            await ledger.escalate_now(self.pool, nid, self.clock())
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

    # -- paging -----------------------------------------------------------------------------------

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
        done = await ledger.escalate_due(
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

    async def acknowledge(self, notification_id: uuid.UUID) -> ledger.AckOutcome:
        return await ledger.acknowledge(self.pool, notification_id, self.clock(), self.wall())
