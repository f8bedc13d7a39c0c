"""Ingest: the only door from the outside world into the patient stream.

A 2xx means the event is durably in Kafka (acks=all); any other answer means nothing
was published.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import Depends, FastAPI

from ingest import registry
from ingest.api_models import Accepted, ClockRequest, EnrollmentRequest, SymptomReportRequest
from ingest.settings import IngestSettings
from shared.db import create_pool, migrate
from shared.events import (
    ClockAdvanced,
    ClockAdvancedPayload,
    PatientEnrolled,
    PatientEnrolledPayload,
    SymptomReported,
    SymptomReportedPayload,
)
from shared.kafka import create_producer, publish
from shared.logs import patient_ref
from shared.topics import CLOCK, PATIENT_EVENTS, PATIENT_PARTITIONS
from shared.web import (
    ApiError,
    BodyLimitMiddleware,
    bearer_auth,
    install_error_handlers,
    install_probes,
)

log = logging.getLogger(__name__)

UNAVAILABLE = (KafkaError, asyncpg.PostgresConnectionError, OSError, asyncio.TimeoutError)


@dataclass
class Deps:
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    wall_clock: Callable[[], dt.datetime]


def unavailable(what: str) -> ApiError:
    return ApiError(503, "unavailable", f"{what} is unreachable; nothing was recorded. Retry.")


def create_app(
    settings: IngestSettings,
    wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> FastAPI:
    deps: Deps | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        nonlocal deps
        pool = await create_pool(settings.database_url.get_secret_value())
        await migrate(pool, "ingest", "ingest")
        producer = create_producer(settings.kafka_bootstrap, "ingest")
        await producer.start()
        deps = Deps(pool, producer, wall_clock)
        try:
            yield
        finally:
            await producer.stop()
            await pool.close()

    app = FastAPI(
        title="HFS recovery — ingest",
        version="1",
        lifespan=lifespan,
        description="Enrollments, symptom reports and SMS replies into the patient stream.",
    )
    app.add_middleware(BodyLimitMiddleware)
    install_error_handlers(app)
    auth = Depends(bearer_auth(settings.api_token))

    def d() -> Deps:
        if deps is None:
            raise unavailable("The service")
        return deps

    async def ready() -> dict[str, bool]:
        checks = {"kafka": False, "postgres": False}
        if deps is None:
            return checks
        with contextlib.suppress(*UNAVAILABLE, asyncpg.PostgresError):
            await asyncio.wait_for(deps.pool.fetchval("SELECT 1"), 2)
            checks["postgres"] = True
        with contextlib.suppress(*UNAVAILABLE):
            await asyncio.wait_for(deps.producer.client.fetch_all_metadata(), 2)
            checks["kafka"] = True
        return checks

    install_probes(app, ready)

    async def clock_now(conn: asyncpg.Connection | asyncpg.Pool) -> dt.datetime:
        """The time ingest stamps on what it records: simulated or wall clock."""
        if not settings.simulated_clock:
            return d().wall_clock()
        now = await registry.simulated_now(conn)
        if now is None:
            raise ApiError(
                409, "clock_not_set", "SIMULATED_CLOCK=1: set the clock with POST /v1/clock first."
            )
        return now

    responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "Missing or wrong bearer token"},
        413: {"description": "Body over 64 KiB"},
        422: {"description": "Invalid fields"},
        503: {"description": "Kafka or the database unreachable; nothing recorded"},
    }

    @app.post(
        "/v1/patients",
        status_code=202,
        dependencies=[auth],
        responses={409: {"description": "Phone belongs to another patient"}, **responses},
    )
    async def enroll(body: EnrollmentRequest) -> Accepted:
        deps_ = d()
        payload = PatientEnrolledPayload.model_validate(body.model_dump(exclude={"patient_id"}))
        try:
            async with deps_.pool.acquire() as conn, conn.transaction():
                now = await clock_now(conn)
                try:
                    await registry.upsert_patient(conn, body.patient_id, payload, now)
                except registry.PhoneTaken:
                    raise ApiError(
                        409,
                        "phone_in_use",
                        "That phone number belongs to another patient.",
                        [{"field": "phone", "message": "already enrolled for another patient"}],
                    ) from None
                event = PatientEnrolled(
                    event_id=uuid.uuid4(),
                    occurred_at=now,
                    recorded_at=now,
                    patient_id=body.patient_id,
                    source="api",
                    payload=payload,
                )
                # Publish inside the transaction: the registry commits only after the ack.
                await publish(deps_.producer, PATIENT_EVENTS, event)
        except UNAVAILABLE as exc:
            log.warning(
                "enrollment not recorded: %s",
                type(exc).__name__,
                extra={"patient": patient_ref(body.patient_id)},
            )
            raise unavailable("Kafka or the database") from None
        log.info(
            "patient enrolled",
            extra={"patient": patient_ref(body.patient_id), "event_id": str(event.event_id)},
        )
        return Accepted(event_id=event.event_id)

    @app.post(
        "/v1/symptom-reports",
        status_code=202,
        dependencies=[auth],
        responses={404: {"description": "Unknown patient"}, **responses},
    )
    async def report(body: SymptomReportRequest) -> Accepted:
        deps_ = d()
        try:
            now = await clock_now(deps_.pool)
            if body.occurred_at > now + settings.max_future_skew:
                raise ApiError(
                    422,
                    "invalid_fields",
                    "Some fields are invalid.",
                    [{"field": "occurred_at", "message": "is in the future"}],
                )
            if not await registry.patient_exists(deps_.pool, body.patient_id):
                raise ApiError(
                    404,
                    "unknown_patient",
                    "No patient is enrolled with that id.",
                    [{"field": "patient_id", "message": "not enrolled"}],
                )
            event = SymptomReported(
                event_id=body.event_id or uuid.uuid4(),
                occurred_at=body.occurred_at,
                recorded_at=now,
                patient_id=body.patient_id,
                source="api",
                payload=SymptomReportedPayload(
                    severity=body.severity, note=body.note, channel=body.source
                ),
            )
            await publish(deps_.producer, PATIENT_EVENTS, event)
        except UNAVAILABLE as exc:
            log.warning(
                "report not recorded: %s",
                type(exc).__name__,
                extra={"patient": patient_ref(body.patient_id)},
            )
            raise unavailable("Kafka or the database") from None
        log.info(
            "symptom reported",
            extra={"patient": patient_ref(body.patient_id), "event_id": str(event.event_id)},
        )
        return Accepted(event_id=event.event_id)

    @app.get("/v1/clock", dependencies=[auth], responses=responses)
    async def read_clock() -> dict[str, object]:
        """The clock ingest stamps events with: simulated (``null`` until first set) or wall."""
        if not settings.simulated_clock:
            return {"now": d().wall_clock().isoformat(), "simulated": False}
        try:
            now = await registry.simulated_now(d().pool)
        except UNAVAILABLE:
            raise unavailable("The database") from None
        return {"now": now.isoformat() if now else None, "simulated": True}

    @app.post(
        "/v1/clock",
        status_code=202,
        dependencies=[auth],
        responses={
            404: {"description": "Not a simulated clock"},
            409: {"description": "Earlier than the current clock"},
            **responses,
        },
    )
    async def advance_clock(body: ClockRequest) -> Accepted:
        if not settings.simulated_clock:
            raise ApiError(404, "not_found", "The clock moves by itself (SIMULATED_CLOCK=0).")
        deps_ = d()
        now = body.now.astimezone(dt.UTC)
        event_id = uuid.uuid4()
        try:
            async with deps_.pool.acquire() as conn, conn.transaction():
                current = await registry.lock_clock(conn)
                if current is not None and now < current:
                    raise ApiError(
                        409,
                        "clock_backwards",
                        f"The clock is already at {current.isoformat()}; it only moves forward.",
                    )
                await registry.set_clock(conn, now)
                event = ClockAdvanced(
                    event_id=event_id,
                    occurred_at=now,
                    recorded_at=now,
                    source="clock",
                    payload=ClockAdvancedPayload(now=now),
                )
                # Every partition: each worker sees ticks for exactly the partitions it owns.
                await asyncio.gather(
                    *(
                        publish(deps_.producer, CLOCK, event, partition=p)
                        for p in range(PATIENT_PARTITIONS)
                    )
                )
        except UNAVAILABLE:
            raise unavailable("Kafka or the database") from None
        return Accepted(event_id=event_id)

    return app
