"""Ingest: the only door from the outside world into the patient stream.

A 2xx means the event is durably in Kafka (acks=all); any other answer means nothing
was published. Requests that record something run in one PostgreSQL transaction that
publishes, then commits only after the broker's ack: the registry, the idempotency key
and the stored answer exist exactly when the event does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import Response
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse

from ingest import consent as consent_record
from ingest import erasure, inbound, keys, outbox, registry, voice, webhook
from ingest.api_models import (
    Accepted,
    ClockRequest,
    ConsentRequest,
    EnrollmentRequest,
    ErrorBody,
    SymptomReportRequest,
)
from ingest.settings import IngestSettings
from ingest.ticker import run_ticker
from shared.audit import ANY_TEAM, AuditTrail, decode_cursor, encode_cursor, sms_actor
from shared.audit import query as audit_query
from shared.auth import Authenticator, Principal, may
from shared.crypto import PREFETCH_BATCH, EventCodec, KeyUnavailable, parse_master_key
from shared.db import create_pool, migrate
from shared.events import (
    PATIENT_ID_PATTERN,
    ClockAdvanced,
    ClockAdvancedPayload,
    ConsentChanged,
    ConsentChangedPayload,
    ErasureReason,
    MessageStatusReported,
    MessageStatusReportedPayload,
    PatientEnrolled,
    SymptomReported,
    SymptomReportedPayload,
)
from shared.kafka import create_producer, publish
from shared.logs import patient_ref
from shared.metrics import EVENTS_PRODUCED, PRODUCE_LATENCY
from shared.supervisor import Supervisor, beat
from shared.topics import CLOCK, PATIENT_EVENTS, PATIENT_PARTITIONS, PROVIDER_EVENTS
from shared.transient import UNAVAILABLE
from shared.web import (
    ApiError,
    BodyLimitMiddleware,
    authorize,
    bearer_auth,
    client_address,
    error_response,
    install_error_handlers,
    install_probes,
)

log = logging.getLogger(__name__)

#: Idempotency keys are ids clients choose: printable ASCII, no spaces.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
#: Event ids derived from a client's idempotency key or a provider's message SID.
KEY_NAMESPACE = uuid.UUID("1c3e8f0e-54a1-4f0f-8c1a-7f5d2f2b8e64")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Makes a retried request return the same answer and publish one event",
    ),
]

AUDIT_FILTERS = {"patient_id", "actor", "since", "until", "cursor", "limit"}
#: What an inbound text does to a patient's data, for the audit trail (ACK: the notifier's).
SMS_ACTIONS = {"report": "report.write", "stop": "consent.change", "start": "consent.change"}

INBOUND = Counter(
    "ingest_sms_inbound_total", "Inbound texts by what they meant.", ["outcome", "replayed"]
)
STATUS_CALLBACKS = Counter(
    "ingest_sms_status_callbacks_total", "Twilio status callbacks by status.", ["status"]
)
CALL_STATUSES = Counter(
    "ingest_call_status_callbacks_total", "Page call status callbacks by status.", ["status"]
)
REJECTED_SIGNATURES = Counter(
    "ingest_twilio_signature_rejected_total", "Webhooks refused for their signature.", ["path"]
)
# Known label values start at 0, so dashboards and rate() see the series before the first one.
for _outcome in ("report", "stop", "start", "ack"):
    INBOUND.labels(outcome=_outcome, replayed="false")
for _status in ("delivered", "failed", "undelivered"):
    STATUS_CALLBACKS.labels(status=_status)
for _topic, _type in (
    (PATIENT_EVENTS, "patient.enrolled"),
    (PATIENT_EVENTS, "symptom.reported"),
    (PATIENT_EVENTS, "consent.changed"),
    (CLOCK, "clock.advanced"),
    (PROVIDER_EVENTS, "message.status_reported"),
):
    EVENTS_PRODUCED.labels(_topic, _type, "ok")
    PRODUCE_LATENCY.labels(_topic)


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


def unavailable(what: str) -> ApiError:
    return ApiError(503, "unavailable", f"{what} is unreachable; nothing was recorded. Retry.")


def invalid(field: str, message: str) -> ApiError:
    return ApiError(
        422, "invalid_fields", "Some fields are invalid.", [{"field": field, "message": message}]
    )


def twiml(text: str | None) -> str:
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Malformed JSON, or a body that is not a JSON object"),
    401: _error("Missing or invalid bearer token"),
    403: _error("The token lacks the role, scope or care team"),
    413: _error("Body over 64 KiB"),
    422: _error("Invalid fields"),
    503: _error("Kafka or the database unreachable; nothing recorded (safe to retry)"),
}
WEBHOOK_ERRORS: dict[int | str, dict[str, Any]] = {
    403: _error("Missing or wrong X-Twilio-Signature"),
    409: _error("A MessageSid replayed with different content, or the simulated clock unset"),
    413: _error("Body over 64 KiB"),
    422: _error("A correctly signed request without the fields Twilio always sends"),
    # Stored before the answer (ingest.outbox), so a Kafka outage still answers 200.
    503: _error("The database unreachable; nothing recorded (Twilio then tries the Fallback URL)"),
}


def _form_body(fields: dict[str, str], required: list[str]) -> dict[str, Any]:
    """OpenAPI for a Twilio webhook: a signed form post."""
    return {
        "parameters": [
            {
                "name": "X-Twilio-Signature",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": "HMAC of PUBLIC_BASE_URL + path and the form fields",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            k: {"type": "string", "description": v} for k, v in fields.items()
                        },
                        "required": required,
                    }
                }
            },
        },
    }


def create_app(
    settings: IngestSettings,
    wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    connect: Callable[[IngestSettings], Awaitable[Resources]] = connect,
) -> FastAPI:
    resources: Resources | None = None
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    texts = inbound.Texts(clinic_name=settings.clinic_name)
    public_base = settings.public_base_url.rstrip("/")
    supervisor = Supervisor()  # the outbox relay, the clock ticker, erasure and retention
    erasure_stores = settings.erasure_store_names
    relay: outbox.Relay | None = None
    master_key = parse_master_key(settings.master_key.get_secret_value())

    async def keep_connecting() -> None:
        """Connect in the background: until then /readyz and every request say 503."""
        nonlocal resources, relay
        delay = 0.5
        while True:
            try:
                resources = await connect(settings)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "Kafka or PostgreSQL unreachable (%s); retrying in %.1f s",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                resources.arm(master_key)
                log.info("connected to Kafka and PostgreSQL")
                relay = outbox.Relay(resources.pool, resources.producer)
                supervisor.add("outbox-relay", relay.run_forever)
                progress = erasure.ProgressReader(
                    resources.pool, erasure.consumer(settings.kafka_bootstrap), erasure_stores
                )
                supervisor.add("erasure-progress", progress.run_forever, stale_after=120.0)
                supervisor.add("retention", retention_forever, stale_after=300.0)
                if not settings.simulated_clock and settings.tick_interval_s > 0:
                    supervisor.add(
                        "ticker",
                        functools.partial(
                            run_ticker, resources.producer, wall_clock, settings.tick_interval_s
                        ),
                        stale_after=max(120.0, 3 * settings.tick_interval_s),
                    )
                supervisor.start()
                return

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(keep_connecting())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await supervisor.stop()
            if resources is not None:
                await resources.close()
            await trail.close()

    app = FastAPI(
        title="HFS recovery — ingest",
        version="1",
        lifespan=lifespan,
        description="Enrollments, symptom reports and SMS replies into the patient stream. "
        "A 2xx means the event is durably in Kafka; any other answer means nothing was "
        "published.",
    )
    app.add_middleware(BodyLimitMiddleware)
    install_error_handlers(app)
    authenticator = Authenticator(settings.oidc(), settings.api_token)
    trail = AuditTrail(settings.audit_url(), "ingest", wall_clock)
    caller_of = Depends(bearer_auth(authenticator))

    def deps() -> Resources:
        if resources is None:
            raise unavailable("Kafka or the database")
        return resources

    async def ready() -> dict[str, bool]:
        checks = {"kafka": False, "postgres": False}
        if resources is None:
            return checks
        with contextlib.suppress(*UNAVAILABLE, asyncpg.PostgresError):
            await asyncio.wait_for(resources.pool.fetchval("SELECT 1"), 2)
            checks["postgres"] = True
        with contextlib.suppress(*UNAVAILABLE):
            await asyncio.wait_for(resources.producer.client.fetch_all_metadata(), 2)
            checks["kafka"] = True
        return checks

    install_probes(app, ready, stale_loops=supervisor.stale)

    async def clock_now(conn: asyncpg.Connection | asyncpg.Pool) -> dt.datetime:
        """The time ingest stamps on what it records: simulated or wall clock."""
        if not settings.simulated_clock:
            return wall_clock()
        now = await registry.simulated_now(conn)
        if now is None:
            raise ApiError(
                409, "clock_not_set", "SIMULATED_CLOCK=1: set the clock with POST /v1/clock first."
            )
        return now

    async def claim(
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

    async def remember(
        conn: asyncpg.Connection, scope: str, key: str | None, response: Response
    ) -> None:
        if key is not None:
            answer = registry.StoredAnswer(
                response.status_code,
                response.media_type or "application/json",
                bytes(response.body).decode(),
            )
            await registry.store_answer(conn, scope, key, answer)

    def accepted(event_id: uuid.UUID) -> Response:
        return Response(
            Accepted(event_id=event_id).model_dump_json(),
            status_code=202,
            media_type="application/json",
        )

    # --- JSON API -------------------------------------------------------------------------

    @app.post(
        "/v1/patients",
        status_code=202,
        response_model=Accepted,
        responses={
            409: _error(
                "The phone belongs to another patient, or the idempotency key was used "
                "with another body"
            ),
            **COMMON_ERRORS,
        },
    )
    async def enroll(
        body: EnrollmentRequest,
        request: Request,
        idempotency_key: IdempotencyKey = None,
        caller: Principal = caller_of,
    ) -> Response:
        """Enroll a patient, or update the enrollment with the same ``patient_id``."""
        if body.phone in (body.care_team.on_call, body.care_team.backup):
            raise invalid("phone", "must differ from the care team's phones")
        where = client_address(request)
        await trail.guard(
            caller,
            "patient.write",
            patient_id=body.patient_id,
            resource="enrollment",
            team=body.care_team.team,
            source=where,
        )
        res = deps()
        payload = body.payload()
        scope = "enroll"
        try:
            # The key first, committed on its own: a consumer reading the enrollment must
            # find it (an enrollment that then fails leaves a key for no data).
            await res.keyring.ensure(body.patient_id)
            async with res.pool.acquire() as conn, conn.transaction():
                fingerprint = registry.fingerprint(body.model_dump(mode="json"))
                replay = await claim(conn, scope, idempotency_key, fingerprint)
                if replay is not None:
                    return replay
                previous_team = await registry.patient_team(conn, body.patient_id)
                if previous_team not in (None, body.care_team.team):
                    # Moving a patient to another team takes the right to both.
                    await trail.guard(
                        caller,
                        "patient.write",
                        patient_id=body.patient_id,
                        resource="enrollment",
                        team=previous_team,
                        source=where,
                    )
                now = await clock_now(conn)
                today = now.date()
                earliest, latest = today - settings.surgery_past, today + settings.surgery_future
                if not earliest <= body.surgery_date <= latest:
                    raise invalid("surgery_date", f"must be between {earliest} and {latest}")
                try:
                    consent = await registry.upsert_patient(conn, body.patient_id, payload, now)
                except (registry.PhoneTaken, asyncpg.UniqueViolationError):
                    raise ApiError(
                        409,
                        "phone_in_use",
                        "That phone number belongs to another patient.",
                        [{"field": "phone", "message": "already enrolled for another patient"}],
                    ) from None
                # An update never changes consent: the event carries the consent on record.
                payload = payload.model_copy(update={"sms_consent": consent})
                event = PatientEnrolled(
                    event_id=_derived_id(scope, idempotency_key),
                    occurred_at=now,
                    recorded_at=now,
                    patient_id=body.patient_id,
                    source="api",
                    payload=payload,
                )
                if previous_team is None:  # a first enrollment: the form's consent
                    await consent_record.record(
                        conn,
                        patient_id=body.patient_id,
                        sms_consent=consent,
                        channel="enrollment_form",
                        actor=caller.sub,
                        event_id=event.event_id,
                        occurred_at=now,
                    )
                response = accepted(event.event_id)
                await remember(conn, scope, idempotency_key, response)
                # Publish inside the transaction: it commits only after the broker's ack.
                await publish(res.producer, PATIENT_EVENTS, event, codec=res.codec)
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
        return response

    @app.post(
        "/v1/symptom-reports",
        status_code=202,
        response_model=Accepted,
        responses={
            404: _error("Unknown patient"),
            409: _error("The event_id (idempotency key) was used with another body"),
            **COMMON_ERRORS,
        },
    )
    async def report(
        body: SymptomReportRequest,
        request: Request,
        idempotency_key: IdempotencyKey = None,
        caller: Principal = caller_of,
    ) -> Response:
        """Record one symptom report. ``event_id`` (or, without one, ``Idempotency-Key``)
        makes a retry safe: the same id twice is accepted twice and counted once."""
        res = deps()
        team: str | None = None
        try:
            if caller.teams is not None and may(caller, "report.write"):
                team = await registry.patient_team(res.pool, body.patient_id)
            await trail.guard(
                caller,
                "report.write",
                patient_id=body.patient_id,
                resource="symptom-report",
                team=team,
                source=client_address(request),
            )
        except UNAVAILABLE:
            raise unavailable("The database or the audit trail") from None
        key = str(body.event_id) if body.event_id is not None else idempotency_key
        scope = "symptom-report"

        async def checked(conn: asyncpg.Connection | asyncpg.Pool) -> SymptomReported:
            now = await clock_now(conn)
            if body.occurred_at > now + settings.max_future_skew:
                raise invalid("occurred_at", "is in the future")
            if body.occurred_at < now - settings.max_report_age:
                raise invalid("occurred_at", "is too far in the past")
            if not await registry.patient_exists(conn, body.patient_id):
                raise ApiError(
                    404,
                    "unknown_patient",
                    "No patient is enrolled with that id.",
                    [{"field": "patient_id", "message": "not enrolled"}],
                )
            return SymptomReported(
                event_id=body.event_id or _derived_id(scope, idempotency_key),
                occurred_at=body.occurred_at,
                recorded_at=now,
                patient_id=body.patient_id,
                source="api",
                payload=SymptomReportedPayload(
                    severity=body.severity, note=body.note, channel=body.source
                ),
            )

        try:
            if key is None:
                # Nothing to remember: two reads, then the publish, with no connection held
                # while the broker acknowledges (its event id is new, so a retry is a new
                # report; send an event_id to make retries safe).
                event = await checked(res.pool)
                response = accepted(event.event_id)
                await publish(res.producer, PATIENT_EVENTS, event, codec=res.codec)
            else:
                async with res.pool.acquire() as conn, conn.transaction():
                    fingerprint = registry.fingerprint(
                        body.model_dump(mode="json", exclude={"event_id"})
                    )
                    replay = await claim(conn, scope, key, fingerprint)
                    if replay is not None:
                        return replay
                    event = await checked(conn)
                    response = accepted(event.event_id)
                    await remember(conn, scope, key, response)
                    # Inside the transaction: the key commits only after the broker's ack.
                    await publish(res.producer, PATIENT_EVENTS, event, codec=res.codec)
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
        return response

    @app.post(
        "/v1/patients/{patient_id}/consent",
        status_code=202,
        response_model=Accepted,
        responses={
            404: _error("Unknown patient"),
            409: _error("The idempotency key was used with another body"),
            **COMMON_ERRORS,
        },
    )
    async def record_consent(
        body: ConsentRequest,
        patient_id: Annotated[str, Path(pattern=PATIENT_ID_PATTERN)],
        request: Request,
        idempotency_key: IdempotencyKey = None,
        caller: Principal = caller_of,
    ) -> Response:
        """Record a consent change the patient asked a clinician for: the same
        ``consent.changed`` event (reason ``stop``/``start``) as texting STOP or START."""
        res = deps()
        team: str | None = None
        try:
            if caller.teams is not None and may(caller, "patient.write"):
                team = await registry.patient_team(res.pool, patient_id)
            await trail.guard(
                caller,
                "patient.write",
                patient_id=patient_id,
                resource="consent",
                team=team,
                source=client_address(request),
            )
        except UNAVAILABLE:
            raise unavailable("The database or the audit trail") from None
        scope = f"consent:{patient_id}"
        try:
            async with res.pool.acquire() as conn, conn.transaction():
                replay = await claim(
                    conn, scope, idempotency_key, registry.fingerprint(body.model_dump())
                )
                if replay is not None:
                    return replay
                if not await registry.patient_exists(conn, patient_id):
                    raise ApiError(404, "unknown_patient", "No patient is enrolled with that id.")
                now = await clock_now(conn)
                event = ConsentChanged(
                    event_id=_derived_id(scope, idempotency_key),
                    occurred_at=now,
                    recorded_at=now,
                    patient_id=patient_id,
                    source="api",
                    payload=ConsentChangedPayload(
                        sms_consent=body.sms_consent, reason="start" if body.sms_consent else "stop"
                    ),
                )
                await registry.set_consent(conn, patient_id, body.sms_consent, now)
                await consent_record.record(
                    conn,
                    patient_id=patient_id,
                    sms_consent=body.sms_consent,
                    channel="clinician_phone",
                    actor=caller.sub,
                    event_id=event.event_id,
                    occurred_at=now,
                )
                response = accepted(event.event_id)
                await remember(conn, scope, idempotency_key, response)
                await publish(res.producer, PATIENT_EVENTS, event, codec=res.codec)
        except UNAVAILABLE as exc:
            log.warning(
                "consent change not recorded: %s",
                type(exc).__name__,
                extra={"patient": patient_ref(patient_id)},
            )
            raise unavailable("Kafka or the database") from None
        log.info("consent recorded", extra={"patient": patient_ref(patient_id)})
        return response

    @app.get(
        "/v1/patients/{patient_id}/consent",
        responses={
            401: _error("Missing or invalid bearer token"),
            403: _error("The token lacks the role, scope or care team"),
            404: _error("Unknown patient"),
            503: _error("Database down"),
        },
    )
    async def read_consent(
        patient_id: Annotated[str, Path(pattern=PATIENT_ID_PATTERN)],
        request: Request,
        caller: Principal = caller_of,
    ) -> dict[str, object]:
        """The patient's consent now and every change of it: when, how (``channel``:
        enrollment_form, sms_keyword, clinician_phone) and by whom (``actor``: the
        recording user's subject, or "patient by SMS"). Staff of the patient's team."""
        res = deps()
        try:
            team = None
            if may(caller, "patient.read"):
                team = await registry.patient_team(res.pool, patient_id)
            await trail.guard(
                caller,
                "patient.read",
                patient_id=patient_id,
                resource="consent",
                team=team,
                source=client_address(request),
            )
            current = await res.pool.fetchval(
                "SELECT sms_consent FROM ingest.patients WHERE patient_id = $1", patient_id
            )
            if current is None:
                raise ApiError(404, "unknown_patient", "No patient is enrolled with that id.")
            changes = await consent_record.history(res.pool, patient_id)
        except UNAVAILABLE:
            raise unavailable("The database or the audit trail") from None
        return {"patient_id": patient_id, "sms_consent": current, "changes": changes}

    @app.get(
        "/v1/clock",
        responses={
            401: _error("Missing or invalid bearer token"),
            403: _error("Not an operator or admin"),
            503: _error("Database down"),
        },
    )
    async def read_clock(caller: Principal = caller_of) -> dict[str, object]:
        """The clock events are stamped with: simulated (``null`` until first set) or wall."""
        authorize(caller, "clock")
        if not settings.simulated_clock:
            return {"now": wall_clock().isoformat(), "simulated": False}
        try:
            now = await registry.simulated_now(deps().pool)
        except UNAVAILABLE:
            raise unavailable("The database") from None
        return {"now": now.isoformat() if now else None, "simulated": True}

    @app.post(
        "/v1/clock",
        status_code=202,
        response_model=Accepted,
        responses={
            404: _error("Not a simulated clock (SIMULATED_CLOCK=0)"),
            409: _error("Earlier than the current clock"),
            **COMMON_ERRORS,
        },
    )
    async def advance_clock(body: ClockRequest, caller: Principal = caller_of) -> Response:
        """Move the simulated clock forward (only with ``SIMULATED_CLOCK=1``)."""
        authorize(caller, "clock")
        if not settings.simulated_clock:
            raise ApiError(404, "not_found", "The clock moves by itself (SIMULATED_CLOCK=0).")
        res = deps()
        now = body.now.astimezone(dt.UTC)
        event_id = uuid.uuid4()
        try:
            async with res.pool.acquire() as conn, conn.transaction():
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
                        publish(res.producer, CLOCK, event, partition=p)
                        for p in range(PATIENT_PARTITIONS)
                    )
                )
        except UNAVAILABLE:
            raise unavailable("Kafka or the database") from None
        return accepted(event_id)

    # --- erasure and the patients' data keys ---------------------------------------------

    @app.exception_handler(KeyUnavailable)
    async def on_key_unavailable(_: Request, exc: Exception) -> Response:
        # The patient was erased while this request ran: as for any unknown patient.
        return error_response(
            ApiError(404, "unknown_patient", "No patient is enrolled with that id.")
        )

    @app.get("/internal/v1/keys/{patient_id}", include_in_schema=False)
    async def patient_key(
        patient_id: Annotated[str, Path(pattern=PATIENT_ID_PATTERN)],
        caller: Principal = caller_of,
    ) -> dict[str, str]:
        """A patient's data key, for the services that read the patient's events (their
        OAuth2 clients, ``KEY_CLIENTS``; the development credential in development)."""
        if not (caller.development or (caller.client in settings.key_client_ids)):
            raise ApiError(403, "forbidden", "Only the platform's services may fetch keys.")
        res = deps()
        try:
            key = await res.keyring.key(patient_id)
        except UNAVAILABLE:
            raise unavailable("The database") from None
        if key is None:
            raise ApiError(404, "unknown_patient", "No key: no such patient, or erased.")
        return {"key": base64.b64encode(key).decode()}

    @app.post("/internal/v1/keys", include_in_schema=False)
    async def patient_keys(body: KeyRequest, caller: Principal = caller_of) -> dict[str, Any]:
        """Many patients' keys in one request (a consumer's batch); unknown ones left out."""
        if not (caller.development or (caller.client in settings.key_client_ids)):
            raise ApiError(403, "forbidden", "Only the platform's services may fetch keys.")
        res = deps()
        try:
            found = await res.keyring.keys(sorted(set(body.patient_ids)))
        except UNAVAILABLE:
            raise unavailable("The database") from None
        return {"keys": {p: base64.b64encode(k).decode() for p, k in found.items()}}

    async def start_erasure(
        patient_id: str, reason: ErasureReason, requested_by: str
    ) -> erasure.Started | None:
        res = deps()
        async with res.pool.acquire() as conn, conn.transaction():
            now = await clock_now(conn)
            return await erasure.erase(
                conn,
                res.producer,
                res.codec,
                res.keyring,
                patient_id,
                reason=reason,
                requested_by=requested_by,
                now=now,
            )

    @app.delete(
        "/v1/patients/{patient_id}",
        status_code=202,
        response_model=Accepted,
        responses={404: _error("Unknown patient (never enrolled, nor erased)"), **COMMON_ERRORS},
    )
    async def erase_patient(
        patient_id: Annotated[str, Path(pattern=PATIENT_ID_PATTERN)],
        request: Request,
        caller: Principal = caller_of,
    ) -> Response:
        """Erase the patient everywhere (admin). 202 with the erasure's id; a second DELETE
        answers 202 with the same id. Progress: ``GET /v1/patients/{id}/erasure``."""
        try:
            await trail.guard(
                caller,
                "patient.erase",
                patient_id=patient_id,
                resource="erasure",
                team=ANY_TEAM,
                source=client_address(request),
            )
            started = await start_erasure(patient_id, "request", caller.sub)
        except UNAVAILABLE:
            raise unavailable("Kafka or the database") from None
        if started is None:
            raise ApiError(404, "unknown_patient", "No patient is enrolled with that id.")
        return accepted(started.erasure_id)

    @app.get(
        "/v1/patients/{patient_id}/erasure",
        responses={404: _error("No erasure of that patient"), **COMMON_ERRORS},
    )
    async def erasure_status(
        patient_id: Annotated[str, Path(pattern=PATIENT_ID_PATTERN)],
        request: Request,
        caller: Principal = caller_of,
    ) -> dict[str, Any]:
        """``pending`` until every store reported its part ``done`` (admin)."""
        res = deps()
        try:
            await trail.guard(
                caller,
                "patient.erase",
                patient_id=patient_id,
                resource="erasure-status",
                team=ANY_TEAM,
                source=client_address(request),
            )
            found = await erasure.status(res.pool, patient_id, erasure_stores)
        except UNAVAILABLE:
            raise unavailable("The database") from None
        if found is None:
            raise ApiError(404, "not_found", "No erasure of that patient.")
        return found

    async def retention_forever() -> None:
        """Erase patients whose monitoring completed longer ago than the retention period,
        by the service's clock (the simulated one moves only with POST /v1/clock)."""
        retention = dt.timedelta(days=settings.retention_days_after_completion)
        while True:
            beat()
            res = deps()
            try:
                now = (
                    wall_clock()
                    if not settings.simulated_clock
                    else (await registry.simulated_now(res.pool))
                )
                due = await erasure.due_for_retention(res.pool, now, retention) if now else []
                for patient_id in due:
                    await start_erasure(patient_id, "retention", "retention")
            except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("retention sweep failed (%s); retried", type(exc).__name__)
            await asyncio.sleep(settings.retention_sweep_s)

    # --- the audit trail ------------------------------------------------------------------

    @app.get(
        "/v1/audit",
        responses={
            401: _error("Missing or invalid bearer token"),
            403: _error("Not an admin"),
            422: _error("Invalid filters, or a cursor that is not one of ours"),
            503: _error("Database down"),
        },
    )
    async def read_audit(
        request: Request,
        patient_id: Annotated[str | None, Query(pattern=PATIENT_ID_PATTERN)] = None,
        actor: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        since: Annotated[
            str | None, Query(max_length=40, examples=["2026-12-01T00:00:00Z"])
        ] = None,
        until: Annotated[
            str | None, Query(max_length=40, examples=["2026-12-02T00:00:00Z"])
        ] = None,
        cursor: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        caller: Principal = caller_of,
    ) -> dict[str, object]:
        """Who read or changed patient data, oldest first (admin). ``next`` continues."""
        unknown = sorted(set(request.query_params) - AUDIT_FILTERS)
        if unknown:
            raise invalid(unknown[0] or "query", "is not a filter of this endpoint")
        start, end = _instant("since", since), _instant("until", until)
        try:
            after = decode_cursor(cursor) if cursor else 0
        except ValueError:
            raise invalid("cursor", "is not a cursor this endpoint returned") from None
        res = deps()
        try:
            await trail.guard(
                caller,
                "audit.read",
                patient_id=patient_id,
                resource="audit",
                team=ANY_TEAM,
                source=client_address(request),
            )
            events, last = await audit_query(
                res.pool,
                patient_id=patient_id,
                actor=actor,
                since=start,
                until=end,
                after_seq=after,
                limit=limit,
            )
        except UNAVAILABLE:
            raise unavailable("The database") from None
        return {"events": events, "next": encode_cursor(last) if last is not None else None}

    # --- Twilio webhooks ------------------------------------------------------------------

    async def signed_form(request: Request) -> ImmutableMultiDict[str, str]:
        """The webhook's form fields, once ``X-Twilio-Signature`` proves Twilio sent them.

        The signature covers the URL Twilio was configured with, so it is checked against
        ``PUBLIC_BASE_URL`` + the path (+ the query), never the URL the request arrived on.
        """
        raw = (await request.body()).decode("utf-8", errors="replace")
        form = ImmutableMultiDict(parse_qsl(raw, keep_blank_values=True))
        signature = request.headers.get("x-twilio-signature", "")
        url = public_base + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        algorithm = get_signature_algorithm(
            request.headers.get("x-twilio-webhooks-signature-settings")
        )
        if not signature or not validator.validate(url, form, signature, algorithm):
            REJECTED_SIGNATURES.labels(path=request.url.path).inc()
            log.warning("webhook refused: %s X-Twilio-Signature", "wrong" if signature else "no")
            raise ApiError(
                403,
                "invalid_signature",
                "The X-Twilio-Signature header is missing or does not match this request.",
            )
        return form

    async def flush(through: int) -> None:
        """Stored, so the answer is 200 whatever Kafka does; usually it is in Kafka too
        (the relay takes milliseconds), so wait a little for that before answering."""
        if relay is not None and through:
            await relay.flush(through, settings.webhook_flush_wait_s)

    def check_webhook(form: ImmutableMultiDict[str, str], *, inbound: bool) -> None:
        webhook.check_form(
            form,
            account_sid=settings.twilio_account_sid,
            our_numbers=settings.our_numbers,
            inbound=inbound,
        )

    @app.post(
        "/v1/twilio/inbound",
        response_class=Response,
        responses={
            200: {
                "description": "TwiML: the reply to the texter (possibly empty)",
                "content": {"text/xml": {"schema": {"type": "string"}}},
            },
            **WEBHOOK_ERRORS,
        },
        openapi_extra=_form_body(
            {
                "MessageSid": "SM + 32 hex digits",
                "From": "the texter's phone, E.164",
                "To": "our number",
                "Body": "the text",
                "OptOutType": "STOP, START or HELP (Advanced Opt-Out)",
            },
            ["MessageSid", "From"],
        ),
    )
    async def twilio_inbound(request: Request) -> Response:
        """Twilio's inbound SMS webhook: a reply becomes a report, STOP/START a consent
        change, ``ACK <code>`` from a care-team phone an acknowledgement; answers TwiML."""
        form = await signed_form(request)
        check_webhook(form, inbound=True)
        text = inbound.InboundText(
            message_sid=form.get("MessageSid", ""),
            from_phone=form.get("From", ""),
            body=webhook.capped_body(form.get("Body", "")),
            opt_out_type=form.get("OptOutType") or None,
        )
        if not MESSAGE_SID.match(text.message_sid):
            raise invalid("MessageSid", "must be SM or MM and 32 hex digits")
        if not text.from_phone:
            raise invalid("From", "is required")
        res = deps()
        fingerprint = registry.fingerprint(
            {"from": text.from_phone, "body": text.body, "opt_out": text.opt_out_type}
        )
        replayed = "false"
        stored_through = 0
        try:
            async with res.pool.acquire() as conn, conn.transaction():
                stored = await claim(conn, "twilio-inbound", text.message_sid, fingerprint)
                if stored is not None:
                    replayed = "true"
                    response = stored
                    outcome_label = "replay"
                else:
                    now = await clock_now(conn)
                    sender = await registry.sender(conn, text.from_phone)
                    outcome = inbound.decide(text, sender, now, texts)
                    outcome_label = outcome.label
                    action = SMS_ACTIONS.get(outcome.label)
                    if action is not None and sender.patient_id is not None:
                        # The patient's own phone is the identity here (recorded by reference).
                        await trail.record(
                            sms_actor(patient_ref(text.from_phone)),
                            action,
                            "allowed",
                            patient_id=sender.patient_id,
                            resource=f"sms/{text.message_sid}",
                            source="sms",
                        )
                    response = Response(twiml(outcome.reply), media_type="text/xml")
                    await remember(conn, "twilio-inbound", text.message_sid, response)
                    if outcome.consent is not None and sender.patient_id is not None:
                        await registry.set_consent(conn, sender.patient_id, outcome.consent, now)
                        await consent_record.record(
                            conn,
                            patient_id=sender.patient_id,
                            sms_consent=outcome.consent,
                            channel="sms_keyword",
                            actor=consent_record.PATIENT_BY_SMS,
                            event_id=outcome.publish[0].event.event_id,
                            occurred_at=now,
                            keyword="start" if outcome.consent else "stop",
                        )
                    if outcome.ask is not None and sender.patient_id is not None:
                        asked_at = now if outcome.ask == "asked" else None
                        await registry.set_grade_asked(conn, sender.patient_id, asked_at)
                    for item in outcome.publish:  # published by the relay: Kafka may be down
                        row = await outbox.put(
                            conn, item.topic, item.event, key=item.key, codec=res.codec
                        )
                        stored_through = max(stored_through, row or 0)
        except UNAVAILABLE as exc:
            log.warning("inbound text %s not recorded: %s", text.message_sid, type(exc).__name__)
            raise unavailable("The database") from None
        await flush(stored_through)
        INBOUND.labels(outcome=outcome_label, replayed=replayed).inc()
        log.info("inbound text %s: %s", text.message_sid, outcome_label)
        return response

    @app.post(
        "/v1/twilio/status",
        status_code=204,
        response_class=Response,
        responses={204: {"description": "Recorded"}, **WEBHOOK_ERRORS},
        openapi_extra=_form_body(
            {
                "MessageSid": "the outbound message's SID",
                "MessageStatus": "queued, sent, delivered, undelivered, failed, …",
                "ErrorCode": "Twilio's error code, when failed or undelivered",
            },
            ["MessageSid", "MessageStatus"],
        ),
    )
    async def twilio_status(request: Request) -> Response:
        """Twilio's status callback → ``MessageStatusReported`` on provider-events.v1."""
        form = await signed_form(request)
        check_webhook(form, inbound=False)
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        status = form.get("MessageStatus") or form.get("SmsStatus") or ""
        error_code = form.get("ErrorCode") or None
        try:
            payload = MessageStatusReportedPayload(
                message_sid=sid,
                status=status,  # validated here
                error_code=int(error_code) if error_code and error_code.isdigit() else None,
            )
        except ValidationError as exc:
            fields = [
                {"field": _status_field(str(e["loc"][0]) if e["loc"] else ""), "message": e["msg"]}
                for e in exc.errors()
            ]
            raise ApiError(422, "invalid_fields", "Some fields are invalid.", fields) from None
        res = deps()
        try:
            now = await clock_now(res.pool)
            event = MessageStatusReported(
                event_id=uuid.uuid5(
                    KEY_NAMESPACE, f"twilio-status:{sid}:{payload.status}:{payload.error_code}"
                ),
                occurred_at=now,
                recorded_at=now,
                source="twilio",
                payload=payload,
            )
            async with res.pool.acquire() as conn:  # published by the relay
                row = await outbox.put(conn, PROVIDER_EVENTS, event, key=sid)
        except UNAVAILABLE as exc:
            log.warning("status callback for %s not recorded: %s", sid, type(exc).__name__)
            raise unavailable("The database") from None
        await flush(row or 0)
        STATUS_CALLBACKS.labels(status=payload.status).inc()
        return Response(status_code=204)

    @app.post(
        "/v1/twilio/voice",
        response_class=Response,
        responses={200: {"description": "TwiML said to the callee"}, **WEBHOOK_ERRORS},
    )
    async def twilio_voice(request: Request, code: str = "") -> Response:
        """A page call's keypress (``<Gather>`` action, ``?code=`` the alert's ACK code):
        key 1 acknowledges, as ``ACK <code>`` from the called phone would."""
        form = await signed_form(request)
        check_webhook(form, inbound=False)
        press = voice.Keypress(
            call_sid=form.get("CallSid", ""),
            callee=form.get("To", ""),
            digits=form.get("Digits", ""),
            ack_code=code.upper(),
        )
        if not voice.CALL_SID.match(press.call_sid):
            raise invalid("CallSid", "must be CA and 32 hex digits")
        if not voice.ACK_CODE.match(press.ack_code):
            raise invalid("code", "must be the page's ACK code")
        res = deps()
        row = None
        try:
            async with res.pool.acquire() as conn, conn.transaction():
                answer = voice.decide(press, await clock_now(conn))
                if answer.ack is not None:
                    row = await outbox.put(conn, PROVIDER_EVENTS, answer.ack, key=press.ack_code)
        except UNAVAILABLE as exc:
            log.warning("call keypress %s not recorded: %s", press.call_sid, type(exc).__name__)
            raise unavailable("The database") from None
        await flush(row or 0)
        INBOUND.labels(outcome="call_ack" if row else "call_other", replayed="false").inc()
        return Response(answer.twiml, media_type="text/xml")

    @app.post(
        "/v1/twilio/voice/status",
        status_code=204,
        response_class=Response,
        responses={204: {"description": "Counted"}, **WEBHOOK_ERRORS},
    )
    async def twilio_voice_status(request: Request) -> Response:
        """A page call's status callback: counted (what matters is the keypress)."""
        form = await signed_form(request)
        check_webhook(form, inbound=False)
        status = form.get("CallStatus", "")
        CALL_STATUSES.labels(status=status if status in voice.CALL_STATUSES else "other").inc()
        return Response(status_code=204)

    return app


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_ids: Annotated[
        list[Annotated[str, StringConstraints(pattern=PATIENT_ID_PATTERN)]],
        Field(min_length=1, max_length=PREFETCH_BATCH),
    ]


def _instant(name: str, value: str | None) -> dt.datetime | None:
    """A query's ISO 8601 instant; it must carry an offset (422 otherwise)."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise invalid(name, "must be an ISO 8601 instant with an offset, e.g. 2026-12-01T00:00:00Z")
    return parsed


def _status_field(name: str) -> str:
    return {"message_sid": "MessageSid", "status": "MessageStatus", "error_code": "ErrorCode"}.get(
        name, name
    )


def _derived_id(scope: str, key: str | None) -> uuid.UUID:
    """A retry with the same key publishes the same event id; no key, a fresh one."""
    if key is None:
        return uuid.uuid4()
    return uuid.uuid5(KEY_NAMESPACE, f"{scope}:{key}")
