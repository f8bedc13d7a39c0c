"""Ingest: the only door from the outside world into the patient stream.

A 2xx means the event is durably in Kafka (acks=all); any other answer means nothing
was published. Requests that record something run in one PostgreSQL transaction that
publishes, then commits only after the broker's ack (``ingest.unit_of_work``): the
registry, the idempotency key and the stored answer exist exactly when the event does.

``create_app`` composes the service: the shared ``IngestContext`` (``ingest.context``),
the lifespan that connects in the background (``ingest.background``), one router per
resource (``ingest.routes``) and the error handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import Response
from twilio.request_validator import RequestValidator

from ingest import inbound
from ingest.api import install_unavailable_handler
from ingest.background import keep_connecting
from ingest.context import IngestContext, Resources, connect
from ingest.routes import audit, clock, erasure, keys, patients, reports, twilio
from ingest.settings import IngestSettings
from shared.audit import AuditTrail
from shared.auth import Authenticator
from shared.crypto import KeyUnavailable, parse_master_key
from shared.metrics import EVENTS_PRODUCED, PRODUCE_LATENCY
from shared.topics import CLOCK, PATIENT_EVENTS, PROVIDER_EVENTS
from shared.transient import UNAVAILABLE
from shared.web import (
    ApiError,
    BodyLimitMiddleware,
    bearer_auth,
    error_response,
    install_error_handlers,
    install_probes,
)

# Known label values start at 0, so dashboards and rate() see the series before the first one.
for _topic, _type in (
    (PATIENT_EVENTS, "patient.enrolled"),
    (PATIENT_EVENTS, "symptom.reported"),
    (PATIENT_EVENTS, "consent.changed"),
    (CLOCK, "clock.advanced"),
    (PROVIDER_EVENTS, "message.status_reported"),
):
    EVENTS_PRODUCED.labels(_topic, _type, "ok")
    PRODUCE_LATENCY.labels(_topic)


def create_app(
    settings: IngestSettings,
    wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    connect: Callable[[IngestSettings], Awaitable[Resources]] = connect,
) -> FastAPI:
    authenticator = Authenticator(settings.oidc(), settings.api_token)
    ctx = IngestContext(
        settings=settings,
        wall_clock=wall_clock,
        connect=connect,
        trail=AuditTrail(settings.audit_url(), "ingest", wall_clock),
        authenticate=bearer_auth(authenticator),
        master_key=parse_master_key(settings.master_key.get_secret_value()),
        validator=RequestValidator(settings.twilio_auth_token.get_secret_value()),
        texts=inbound.Texts(clinic_name=settings.clinic_name),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(keep_connecting(ctx))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await ctx.supervisor.stop()
            if ctx.resources is not None:
                await ctx.resources.close()
            await ctx.trail.close()

    app = FastAPI(
        title="HFS recovery — ingest",
        version="1",
        lifespan=lifespan,
        description="Enrollments, symptom reports and SMS replies into the patient stream. "
        "A 2xx means the event is durably in Kafka; any other answer means nothing was "
        "published.",
    )
    app.state.ingest = ctx
    app.add_middleware(BodyLimitMiddleware)
    install_error_handlers(app)
    install_unavailable_handler(app)
    app.add_exception_handler(KeyUnavailable, _on_key_unavailable)

    async def ready() -> dict[str, bool]:
        checks = {"kafka": False, "postgres": False}
        resources = ctx.resources
        if resources is None:
            return checks
        with contextlib.suppress(*UNAVAILABLE, asyncpg.PostgresError):
            await asyncio.wait_for(resources.pool.fetchval("SELECT 1"), 2)
            checks["postgres"] = True
        with contextlib.suppress(*UNAVAILABLE):
            await asyncio.wait_for(resources.producer.client.fetch_all_metadata(), 2)
            checks["kafka"] = True
        return checks

    install_probes(app, ready, stale_loops=ctx.supervisor.stale)
    for router in (patients, reports, clock, keys, erasure, audit, twilio):
        app.include_router(router.router)
    return app


async def _on_key_unavailable(_: Request, exc: Exception) -> Response:
    # The patient was erased while this request ran: as for any unknown patient.
    return error_response(ApiError(404, "unknown_patient", "No patient is enrolled with that id."))
