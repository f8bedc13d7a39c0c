"""What every ingest route shares (connections, settings, clock, audit trail), as one typed
dependency: ``IngestContext`` on ``app.state``, fetched with ``Ctx``; the caller with ``Caller``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from twilio.request_validator import RequestValidator

from ingest import erasure, inbound, keys, outbox, registry
from ingest.settings import IngestSettings
from ingest.unit_of_work import UnitOfWork, idempotent_publish
from shared.audit import AuditTrail
from shared.auth import Principal
from shared.crypto import EventCodec
from shared.db import create_pool, migrate
from shared.events import ErasureReason
from shared.kafka import create_producer
from shared.supervisor import Supervisor
from shared.web import BEARER_SCHEME, ApiError


@dataclass
class Resources:
    """What ingest needs reachable: built by ``connect``, closed at shutdown."""

    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    #: The patients' data keys and the event codec that seals with them (``arm``).
    keyring: keys.LocalKeyring = field(init=False)
    codec: EventCodec = field(init=False)

    def arm(self, master_key: bytes) -> None:
        self.keyring = keys.LocalKeyring(self.pool, master_key)
        self.codec = EventCodec(self.keyring)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.producer.stop()
        await self.pool.close()


async def connect(settings: IngestSettings) -> Resources:
    pool = await create_pool(
        settings.database_url.get_secret_value(), max_size=settings.db_pool_size
    )
    try:
        await migrate(pool, "ingest", "ingest")
        await migrate(pool, "audit", "shared.audit")
        producer = create_producer(settings.kafka_bootstrap, "ingest", principal="ingest")
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
    except BaseException:
        await pool.close()
        raise
    return Resources(pool, producer)


def unavailable() -> ApiError:
    """The contract's 503: a dependency is down, nothing was recorded, a retry is safe."""
    return ApiError(
        503, "unavailable", "Kafka or the database is unreachable; nothing was recorded. Retry."
    )


@dataclass
class IngestContext:
    """Built once by ``create_app``; ``resources`` and ``relay`` arrive once connected."""

    settings: IngestSettings
    wall_clock: Callable[[], dt.datetime]
    connect: Callable[[IngestSettings], Awaitable[Resources]]
    trail: AuditTrail
    #: ``shared.web.bearer_auth``'s check: the caller's ``Principal`` or 401.
    authenticate: Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[Principal]]
    master_key: bytes
    #: Checks ``X-Twilio-Signature`` with ``TWILIO_AUTH_TOKEN``.
    validator: RequestValidator
    #: The replies to inbound texts, in the clinic's name.
    texts: inbound.Texts
    #: The outbox relay, the clock ticker, erasure progress and retention.
    supervisor: Supervisor = field(default_factory=Supervisor)
    resources: Resources | None = None
    relay: outbox.Relay | None = None

    @property
    def res(self) -> Resources:
        """The connections, or 503 until ingest reached Kafka and PostgreSQL."""
        if self.resources is None:
            raise unavailable()
        return self.resources

    async def clock_now(self, conn: asyncpg.Connection | asyncpg.Pool) -> dt.datetime:
        """The time ingest stamps on what it records: simulated or wall clock."""
        if not self.settings.simulated_clock:
            return self.wall_clock()
        now = await registry.simulated_now(conn)
        if now is None:
            raise ApiError(
                409, "clock_not_set", "SIMULATED_CLOCK=1: set the clock with POST /v1/clock first."
            )
        return now

    def unit_of_work(
        self, scope: str, key: str | None, fingerprint: str = ""
    ) -> contextlib.AbstractAsyncContextManager[UnitOfWork]:
        """``idempotent_publish`` on this process's connections."""
        res = self.res
        return idempotent_publish(
            res.pool, res.producer, res.codec, scope=scope, key=key, fingerprint=fingerprint
        )

    async def flush(self, through: int) -> None:
        """Stored, so the answer is 200 whatever Kafka does; usually it is in Kafka too
        (the relay takes milliseconds), so wait a little for that before answering."""
        if self.relay is not None and through:
            await self.relay.flush(through, self.settings.webhook_flush_wait_s)

    async def start_erasure(
        self, patient_id: str, reason: ErasureReason, requested_by: str
    ) -> erasure.Started | None:
        res = self.res
        async with res.pool.acquire() as conn, conn.transaction():
            return await erasure.erase(
                conn,
                res.producer,
                res.codec,
                res.keyring,
                patient_id,
                reason=reason,
                requested_by=requested_by,
                now=await self.clock_now(conn),
            )


def context(request: Request) -> IngestContext:
    ctx: IngestContext = request.app.state.ingest
    return ctx


Ctx = Annotated[IngestContext, Depends(context)]


async def caller(
    request: Request,
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)],
) -> Principal:
    """The request's bearer token as a ``Principal`` (401 without a valid one)."""
    return await ctx.authenticate(request, credentials)


Caller = Annotated[Principal, Depends(caller)]
