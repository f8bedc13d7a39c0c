"""Ingest's outbox for Twilio's webhooks, and the relay that empties it into Kafka.

Twilio does not retry a messaging webhook that fails, so an inbound text must be kept
before it is answered, whatever Kafka is doing: the webhook handler writes its events here
(:func:`put`) in the transaction that stores the answer, answers 200, and :class:`Relay`
publishes them. The JSON API does not use this: its 2xx still means "in Kafka".

Guarantees: every stored event is published at least once, in id order (the order ingest
answered the webhooks, hence in order per phone); one relay publishes at a time (a
PostgreSQL advisory lock), so several ingest replicas never interleave. A crash between
Kafka's ack and the ``published_at`` update publishes a batch again: consumers are
idempotent by event id, which derives from the MessageSid.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from shared.crypto import EventCodec
from shared.events import Envelope, encode_event
from shared.metrics import EVENTS_PRODUCED
from shared.supervisor import beat

log = logging.getLogger(__name__)

#: pg_advisory lock id of the relay (any constant unique in the database).
RELAY_LOCK = 0x1B0C_0A7B
TRANSIENT = (KafkaError, OSError, asyncio.TimeoutError, asyncpg.PostgresError)

PENDING = Gauge("ingest_outbox_pending", "Webhook events stored, not yet published to Kafka")
OLDEST = Gauge("ingest_outbox_oldest_pending_seconds", "Age of the oldest event not yet published")
RELAYED = Counter("ingest_outbox_published_total", "Outbox events published to Kafka")
RELAY_ERRORS = Counter(
    "ingest_outbox_relay_errors_total", "Relay rounds that failed (retried)", ["error"]
)


async def put(
    conn: asyncpg.Connection,
    topic: str,
    event: Envelope,
    *,
    key: str | None = None,
    codec: EventCodec | None = None,
) -> int | None:
    """Store ``event`` for publishing (key: the event's patient unless given); its outbox
    id, or None when an event with its id is already stored. Stored as it will be
    published: with the patient's fields sealed (``codec``), so the outbox holds no
    readable patient data either."""
    value = await codec.encode(event) if codec is not None else encode_event(event)
    raw_key = key or event.patient_id
    stored = await conn.fetchval(
        "INSERT INTO ingest.outbox (event_id, topic, key, event_type, value)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING RETURNING id",
        event.event_id,
        topic,
        raw_key,
        str(getattr(event, "type", "unknown")),
        value,
    )
    return int(stored) if stored is not None else None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Relay:
    """Publishes the outbox in order. ``wake()`` after a commit makes it look at once;
    otherwise it looks every ``idle`` seconds."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        *,
        batch: int = 200,
        idle: float = 0.5,
        retention: dt.timedelta = dt.timedelta(days=7),
        wall: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.batch = batch
        self.idle = idle
        self.retention = retention
        self.wall = wall
        self._wake = asyncio.Event()
        self._rounds = 0
        self._published_through = 0
        self._progress = asyncio.Condition()

    def wake(self) -> None:
        self._wake.set()

    async def flush(self, through: int, within: float) -> bool:
        """Wake the relay and wait (at most ``within`` s) until this process published
        every row up to id ``through``; False if not yet (Kafka down, or another replica's
        relay took them): they are published later either way."""
        self.wake()
        try:
            async with asyncio.timeout(within), self._progress:
                await self._progress.wait_for(lambda: self._published_through >= through)
        except TimeoutError:
            return False
        return True

    async def run_forever(self) -> None:
        delay = 0.5
        while True:
            beat()
            self._wake.clear()  # before looking: a commit from now on wakes the next wait
            try:
                published = await self.publish_once()
                delay = 0.5
            except TRANSIENT as exc:
                RELAY_ERRORS.labels(type(exc).__name__).inc()
                log.warning(
                    "outbox relay paused (%s); retrying in %.1f s", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if published < self.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle)

    async def publish_once(self) -> int:
        """Publish up to ``batch`` pending events, oldest first; the number published."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK):
                return 0  # another replica's relay is at work
            rows = await conn.fetch(
                "SELECT id, topic, key, event_type, value, created_at FROM ingest.outbox"
                " WHERE published_at IS NULL ORDER BY id LIMIT $1",
                self.batch,
            )
            if rows:
                # Sent in order on one idempotent producer: Kafka keeps that order per
                # partition, retries included; then wait for every ack.
                acks = [
                    await self.producer.send(
                        r["topic"],
                        value=bytes(r["value"]),
                        key=r["key"].encode() if r["key"] else None,
                    )
                    for r in rows
                ]
                await asyncio.gather(*acks)
                await conn.execute(
                    "UPDATE ingest.outbox SET published_at = $2 WHERE id = ANY($1::bigint[])",
                    [r["id"] for r in rows],
                    self.wall(),
                )
                for r in rows:
                    EVENTS_PRODUCED.labels(r["topic"], r["event_type"], "ok").inc()
                RELAYED.inc(len(rows))
            await self._housekeeping(conn)
        if rows:
            async with self._progress:
                self._published_through = max(self._published_through, rows[-1]["id"])
                self._progress.notify_all()
        return len(rows)

    async def _housekeeping(self, conn: asyncpg.Connection) -> None:
        self._rounds += 1
        if self._rounds % 100 == 1:
            await conn.execute(
                "DELETE FROM ingest.outbox WHERE published_at < $1", self.wall() - self.retention
            )
        pending = await conn.fetchrow(
            "SELECT count(*) AS n, min(created_at) AS oldest FROM ingest.outbox"
            " WHERE published_at IS NULL"
        )
        PENDING.set(pending["n"] if pending else 0)
        oldest = pending["oldest"] if pending else None
        OLDEST.set(max(0.0, (self.wall() - oldest).total_seconds()) if oldest else 0.0)
