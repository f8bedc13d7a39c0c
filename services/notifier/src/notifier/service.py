"""The notifier's two loops: record decisions from Kafka, and dispatch what is due."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from notifier import ledger
from notifier.sms import SendError, SmsSender
from notifier.templates import render
from shared.events import SendNotification, parse_event
from shared.logs import patient_ref
from shared.topics import DEADLETTER, DECISIONS

log = logging.getLogger(__name__)

CONSUMED = Counter("notifier_events_total", "Decisions consumed", ["outcome"])
SENT = Counter("notifier_notifications_total", "Send outcomes", ["kind", "status", "error_code"])
DEAD = Counter("notifier_dead_letters_total", "Messages sent to the dead-letter topic", ["reason"])
TWILIO_LATENCY = Histogram("notifier_twilio_seconds", "Twilio API call latency")


def backoff(attempt: int, base: float = 2.0, cap: float = 300.0) -> dt.timedelta:
    """Exponential backoff with full jitter for retry ``attempt`` (1-based)."""
    return dt.timedelta(seconds=random.uniform(0, min(cap, base * 2 ** (attempt - 1))))  # noqa: S311


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
    ) -> None:
        self.pool = pool
        self.sender = sender
        self.producer = producer
        self.clock = clock
        self.clinic = clinic
        self.max_attempts = max_attempts
        self.interval = interval
        self.wake = asyncio.Event()

    # -- recording ----------------------------------------------------------------------

    async def consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            for records in batches.values():
                for rec in records:
                    await self._record_until_done(rec)
            if batches:
                await consumer.commit()  # only after every record is in the ledger
                self.wake.set()

    async def _record_until_done(self, rec: ConsumerRecord[Any, Any]) -> None:
        """Never skip a decision: while the database is down, wait and try again."""
        delay = 0.5
        while True:
            try:
                await self.on_record(rec)
                return
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                log.warning("ledger unavailable, retrying: %s", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def on_record(self, rec: ConsumerRecord[Any, Any]) -> None:
        try:
            event = parse_event(rec.value)
            if not isinstance(event, SendNotification):
                raise ValueError(f"unexpected event type {event.type} on {DECISIONS}")
            body = render(
                event.payload.kind, event.payload.language, event.payload.facts, self.clinic
            )
        except (ValidationError, ValueError, KeyError) as exc:
            CONSUMED.labels("dead_letter").inc()
            DEAD.labels("invalid").inc()
            log.warning(
                "undecodable decision sent to the dead-letter topic: %s", type(exc).__name__
            )
            await self.producer.send_and_wait(
                DEADLETTER,
                value=rec.value,
                key=rec.key,
                headers=[("reason", str(exc)[:500].encode()), ("topic", DECISIONS.encode())],
            )
            return
        inserted = await ledger.record(self.pool, event, body, self.clock())
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

    # -- dispatching --------------------------------------------------------------------

    async def dispatch_forever(self) -> None:
        while True:
            try:
                sent = await self.dispatch_once()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("dispatch paused: %s", type(exc).__name__)
                sent = 0
            if not sent:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.interval)
                self.wake.clear()

    async def dispatch_once(self, limit: int = 20) -> int:
        rows = await ledger.claim_due(self.pool, self.clock(), limit)
        for row in rows:
            await self._send(row)
        return len(rows)

    async def _send(self, row: asyncpg.Record) -> None:
        nid, kind = row["notification_id"], row["kind"]
        try:
            with TWILIO_LATENCY.time():
                result = await self.sender.send(row["to_phone"], row["body"])
        except SendError as exc:
            code = str(exc.code or "")
            now = self.clock()
            if exc.permanent or row["attempts"] >= self.max_attempts:
                await ledger.mark_failed(self.pool, nid, str(exc), now)
                SENT.labels(kind, "failed", code).inc()
                if not exc.permanent:
                    DEAD.labels("retries_exhausted").inc()
                    await self.producer.send_and_wait(
                        DEADLETTER,
                        key=row["patient_id"].encode(),
                        value=str(nid).encode(),
                        headers=[("reason", b"retries exhausted"), ("topic", DECISIONS.encode())],
                    )
                log.warning(
                    "notification failed", extra={"notification_id": str(nid), "error": str(exc)}
                )
            else:
                await ledger.reschedule(
                    self.pool, nid, now + backoff(row["attempts"]), str(exc), now
                )
                SENT.labels(kind, "retry", code).inc()
            return
        await ledger.mark_sent(self.pool, nid, result.provider_sid, self.clock())
        SENT.labels(kind, "sent", "").inc()
        log.info(
            "notification sent",
            extra={
                "notification_id": str(nid),
                "kind": kind,
                "patient": patient_ref(row["patient_id"]),
            },
        )
