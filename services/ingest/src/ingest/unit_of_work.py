"""The one way ingest records a request: claim its idempotency key, do its writes, remember
its answer and publish its events, all in one PostgreSQL transaction.

Delivery semantics (the contract's "a 2xx means the event is durably in Kafka"):

- The events are published inside the transaction, after the request's writes, and the
  transaction commits only once the broker acknowledged every one (``acks=all``). A 2xx
  answer therefore means the events are in Kafka and the writes are committed.
- Nothing is published when the transaction rolls back (the block raised, or a write
  failed before the publish), and nothing is committed when a publish fails: the caller
  answers 503 and a retry starts from scratch. (Should the commit itself fail after the
  ack, the event is in Kafka without its row: a retry with the same key publishes the same
  event id, which consumers count once.)
- A replayed idempotency key answers exactly what the first request answered (status,
  media type and body as stored), and publishes nothing. A key used with a different
  request is a 409. A concurrent request with the same key waits for the first one's
  transaction and then replays its answer (or takes the key, if that one rolled back).

Events that must be recorded even while Kafka is down (Twilio's webhooks) go to the outbox
in the same transaction instead (``enqueue``); the relay publishes them after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi.responses import Response

from ingest import outbox, registry
from ingest.api_models import Accepted
from shared.crypto import EventCodec
from shared.events import Envelope
from shared.kafka import publish
from shared.web import ApiError

#: Event ids derived from a client's idempotency key or a provider's message SID.
KEY_NAMESPACE = uuid.UUID("1c3e8f0e-54a1-4f0f-8c1a-7f5d2f2b8e64")


def accepted(event_id: uuid.UUID) -> Response:
    """The contract's 202: the event ``event_id`` is in Kafka."""
    return Response(
        Accepted(event_id=event_id).model_dump_json(),
        status_code=202,
        media_type="application/json",
    )


def derived_id(scope: str, key: str | None) -> uuid.UUID:
    """A retry with the same key publishes the same event id; no key, a fresh one."""
    if key is None:
        return uuid.uuid4()
    return uuid.uuid5(KEY_NAMESPACE, f"{scope}:{key}")


@dataclass
class _Publication:
    topic: str
    event: Envelope
    partition: int | None
    sealed: bool


@dataclass
class UnitOfWork:
    """One request's transaction: ``conn`` for its writes, ``replay`` when the key was
    seen before (answer it and do nothing else), ``answer``/``publish`` to stage the rest."""

    conn: asyncpg.Connection
    replay: Response | None
    #: The highest outbox id ``enqueue`` stored (0: none), for ``Relay.flush``.
    stored_through: int = 0
    response: Response | None = None
    _publications: list[_Publication] = field(default_factory=list)

    def answer(self, response: Response) -> None:
        """The answer to remember under the key (and to give this request)."""
        self.response = response

    def accept(self, topic: str, event: Envelope) -> Response:
        """Answer 202 with ``event``'s id, and publish it (sealed) before the commit."""
        response = accepted(event.event_id)
        self.answer(response)
        self.publish(topic, event)
        return response

    def publish(
        self, topic: str, event: Envelope, *, partition: int | None = None, sealed: bool = True
    ) -> None:
        """Publish ``event`` before the commit (``sealed``: through the patients' codec)."""
        self._publications.append(_Publication(topic, event, partition, sealed))

    async def enqueue(
        self, topic: str, event: Envelope, *, key: str | None = None, codec: EventCodec | None
    ) -> None:
        """Store ``event`` in the outbox now, in this transaction (published after it)."""
        row = await outbox.put(self.conn, topic, event, key=key, codec=codec)
        self.stored_through = max(self.stored_through, row or 0)


@contextlib.asynccontextmanager
async def idempotent_publish(
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    codec: EventCodec,
    *,
    scope: str,
    key: str | None,
    fingerprint: str = "",
) -> AsyncIterator[UnitOfWork]:
    """Run the block in one transaction that commits only after its events' ack.

    ``key`` (None: no idempotency) is claimed first under ``scope``; the block then checks
    ``uow.replay`` and, when it is set, returns it without doing anything else. On a clean
    exit the staged answer is remembered and the staged events are published, in that
    order, before the commit. Raises ``ApiError`` 409 for a key reused with another
    request (``fingerprint``); the broker's and the database's errors pass through.
    """
    async with pool.acquire() as conn, conn.transaction():
        uow = UnitOfWork(conn, await _claim(conn, scope, key, fingerprint))
        yield uow
        if uow.replay is not None:
            return
        if key is not None and uow.response is not None:
            await registry.store_answer(conn, scope, key, _stored(uow.response))
        await asyncio.gather(
            *(
                publish(
                    producer,
                    p.topic,
                    p.event,
                    partition=p.partition,
                    codec=codec if p.sealed else None,
                )
                for p in uow._publications
            )
        )


async def _claim(
    conn: asyncpg.Connection, scope: str, key: str | None, fingerprint: str
) -> Response | None:
    """The stored answer when ``key`` was seen before; else take the key."""
    if key is None:
        return None
    try:
        stored = await registry.claim_key(conn, scope, key, fingerprint)
    except registry.KeyConflict:
        raise ApiError(
            409,
            "idempotency_conflict",
            "This idempotency key was already used with a different request.",
        ) from None
    if stored is None:
        return None
    return Response(stored.body, status_code=stored.status_code, media_type=stored.media_type)


def _stored(response: Response) -> registry.StoredAnswer:
    return registry.StoredAnswer(
        response.status_code,
        response.media_type or "application/json",
        bytes(response.body).decode(),
    )
