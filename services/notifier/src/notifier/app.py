"""The notifier's HTTP API and the wiring of its loops."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import Depends, FastAPI, Request

from notifier import ledger, ledger_pages, ledger_reads
from notifier import metrics as ledger_metrics
from notifier.erasure import TwilioMessageEraser, was_erased
from notifier.policy import SimulatedClock, utcnow
from notifier.service import Notifier
from notifier.settings import NotifierSettings
from notifier.sms import SmsSender, TwilioSmsSender, twilio_client
from notifier.voice import Caller, TwilioCaller
from shared.audit import AuditTrail
from shared.auth import Authenticator, Principal, may
from shared.crypto import EventCodec
from shared.db import create_pool, migrate
from shared.kafka import create_producer
from shared.kafka_security import client_options
from shared.supervisor import Supervisor
from shared.topics import CLOCK, DECISIONS, PATIENT_EVENTS, PROVIDER_EVENTS
from shared.web import (
    ApiError,
    BodyLimitMiddleware,
    authorize,
    bearer_auth,
    client_address,
    install_error_handlers,
    install_probes,
)


def twilio_sender(settings: NotifierSettings) -> SmsSender:
    return TwilioSmsSender(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        from_=settings.twilio_from,
        messaging_service_sid=settings.twilio_messaging_service_sid,
        base_url=settings.twilio_api_base_url or None,
        status_callback=settings.status_callback_url,
        timeout=settings.twilio_timeout_s,
    )


def twilio_caller(settings: NotifierSettings) -> Caller | None:
    """Page calls through Twilio's Voice API, from ``TWILIO_FROM`` (None: texts only)."""
    if not settings.page_voice_calls or not settings.twilio_from:
        return None
    client = twilio_client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        settings.twilio_api_base_url or None,
        settings.twilio_timeout_s,
    )
    base = settings.public_base_url.strip().rstrip("/")
    return TwilioCaller(
        client,
        from_=settings.twilio_from,
        status_callback=f"{base}/v1/twilio/voice/status" if base else None,
    )


def group_consumer(settings: NotifierSettings, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=group,
        **client_options("notifier"),
    )


async def clock_consumer(settings: NotifierSettings) -> AIOKafkaConsumer:
    """Every partition of ``clock.v1`` from the start (ingest writes each tick to all of
    them; the clock only moves forward, so re-reading is harmless)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="notifier-clock",
        **client_options("notifier"),
    )
    await consumer.start()
    partitions: set[int] = set()
    for _ in range(50):
        # partitions_for_topic reads the client's cached metadata: refresh it first
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(CLOCK) or set()
        if partitions:
            break
        await asyncio.sleep(0.2)
    if not partitions:
        await consumer.stop()
        raise RuntimeError(f"topic {CLOCK} not found")
    tps = [TopicPartition(CLOCK, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer


def create_app(
    settings: NotifierSettings,
    sender_factory: Callable[[NotifierSettings], SmsSender] = twilio_sender,
    caller_factory: Callable[[NotifierSettings], Caller | None] = twilio_caller,
    clock: Callable[[], dt.datetime] | None = None,
    wall: Callable[[], dt.datetime] = utcnow,
) -> FastAPI:
    """The API and the loops. The business clock is ``clock`` if given, else the simulated
    clock when ``SIMULATED_CLOCK=1``, else the wall clock."""
    state: dict[str, object] = {}
    supervisor = Supervisor(stale_after=settings.loop_stale_s)
    simulated = SimulatedClock() if clock is None and settings.simulated_clock else None
    now: Callable[[], dt.datetime] = clock or simulated or wall
    trail = AuditTrail(settings.audit_url(), "notifier", wall)
    keyring = settings.keyring()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url.get_secret_value())
        await migrate(pool, "notifier", "notifier")
        await migrate(pool, "audit", "shared.audit")
        producer = create_producer(settings.kafka_bootstrap, "notifier", principal="notifier")
        await producer.start()
        consumers = {
            "decisions": group_consumer(settings, DECISIONS, "notifier"),
            "consent": group_consumer(settings, PATIENT_EVENTS, "notifier-consent"),
            "provider": group_consumer(settings, PROVIDER_EVENTS, "notifier-provider"),
        }
        for c in consumers.values():
            await c.start()
        if simulated is not None:
            await simulated.load(pool)
            consumers["clock"] = await clock_consumer(settings)
        notifier = Notifier(
            pool,
            sender_factory(settings),
            producer,
            now,
            clinic=settings.clinic_name,
            max_attempts=settings.max_attempts,
            interval=settings.dispatch_interval.total_seconds(),
            wall=wall,
            policy=settings.policy(),
            audit=trail,
            caller=caller_factory(settings),
            public_base_url=settings.public_base_url,
            codec=EventCodec(keyring),
            eraser=TwilioMessageEraser(
                twilio_client(
                    settings.twilio_account_sid,
                    settings.twilio_auth_token.get_secret_value(),
                    settings.twilio_api_base_url or None,
                    settings.twilio_timeout_s,
                )
            ),
            hash_key=settings.log_ref_key.get_secret_value().encode(),
        )
        state.update(pool=pool, producer=producer, consumer=consumers["decisions"])
        for name, loop in notifier.loops(consumers, simulated).items():
            supervisor.add(name, loop)
        supervisor.start()
        try:
            yield
        finally:
            await supervisor.stop()
            for c in consumers.values():
                await c.stop()
            await producer.stop()
            await keyring.close()
            await trail.close()
            await pool.close()

    app = FastAPI(title="HFS recovery — notifier", version="1", lifespan=lifespan)
    app.add_middleware(BodyLimitMiddleware)
    install_error_handlers(app)
    authenticator = Authenticator(settings.oidc(), settings.api_token)
    caller_of = Depends(bearer_auth(authenticator))

    def pool() -> asyncpg.Pool:
        p = state.get("pool")
        if not isinstance(p, asyncpg.Pool):
            raise ApiError(503, "unavailable", "The service is starting. Retry.")
        return p

    async def ready() -> dict[str, bool]:
        checks = {"postgres": False, "kafka": False, "loops": False}
        p = state.get("pool")
        if isinstance(p, asyncpg.Pool):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(p.fetchval("SELECT 1"), 2)
                checks["postgres"] = True
        consumer = state.get("consumer")
        if isinstance(consumer, AIOKafkaConsumer):
            checks["kafka"] = bool(consumer.assignment())
        checks["loops"] = bool(supervisor.loops) and not supervisor.stale()
        return checks

    async def refresh_metrics() -> None:
        p = state.get("pool")
        if isinstance(p, asyncpg.Pool):
            await asyncio.wait_for(ledger_metrics.refresh(p), 2)

    install_probes(app, ready, refresh_metrics, supervisor.stale)

    @app.get("/v1/patients/{patient_id}/notifications")
    async def notifications(
        patient_id: str, request: Request, caller: Principal = caller_of
    ) -> dict[str, list[dict[str, object]]]:
        try:
            team = None
            if caller.teams is not None and may(caller, "patient.read"):
                team = await ledger.patient_team(pool(), patient_id)
            await trail.guard(
                caller,
                "patient.read",
                patient_id=patient_id,
                resource="notifications",
                team=team,
                source=client_address(request),
            )
            found = await ledger_reads.for_patient(pool(), patient_id)
            if not found and await was_erased(pool(), patient_id):
                raise ApiError(404, "unknown_patient", "No such patient (erased).")
            return {"notifications": found}
        except (OSError, asyncpg.PostgresError):
            raise ApiError(503, "unavailable", "The database is unreachable. Retry.") from None

    @app.get("/v1/alerts")
    async def alerts(
        ids: str = "", caller: Principal = caller_of
    ) -> dict[str, list[dict[str, object]]]:
        """Page status (sent, escalated, acknowledged) of up to 200 alerts, by id: only
        those of the caller's care teams (no patient id, phone or body in it)."""
        authorize(caller, "patient.read")
        try:
            wanted = [uuid.UUID(i) for i in ids.split(",") if i.strip()]
        except ValueError:
            raise ApiError(
                422,
                "invalid_fields",
                "Some fields are invalid.",
                [{"field": "ids", "message": "must be comma-separated UUIDs"}],
            ) from None
        if len(wanted) > 200:
            raise ApiError(
                422,
                "invalid_fields",
                "Some fields are invalid.",
                [{"field": "ids", "message": "at most 200 ids"}],
            )
        try:
            teams = None if caller.teams is None else sorted(caller.teams)
            return {"alerts": await ledger_reads.page_statuses(pool(), wanted, teams)}
        except (OSError, asyncpg.PostgresError):
            raise ApiError(503, "unavailable", "The database is unreachable. Retry.") from None

    @app.post("/v1/alerts/{notification_id}/ack")
    async def ack(
        notification_id: uuid.UUID, request: Request, caller: Principal = caller_of
    ) -> dict[str, str]:
        try:
            owner = await ledger_reads.notification_owner(pool(), notification_id)
            await trail.guard(
                caller,
                "page.ack",
                patient_id=owner[0] if owner else None,
                resource=f"notification/{notification_id}",
                team=owner[1] if owner else None,
                source=client_address(request),
            )
            outcome = await ledger_pages.acknowledge(pool(), notification_id, now(), wall())
        except (OSError, asyncpg.PostgresError):
            raise ApiError(503, "unavailable", "The database is unreachable. Retry.") from None
        if outcome == "not_found":
            raise ApiError(404, "not_found", "No notification has that id.")
        if outcome == "not_a_page":
            raise ApiError(409, "not_a_page", "Only care-team pages can be acknowledged.")
        return {"notification_id": str(notification_id), "status": "acknowledged"}

    return app
