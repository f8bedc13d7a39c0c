"""The notifier's HTTP API and the wiring of its loops."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
from aiokafka import AIOKafkaConsumer
from fastapi import Depends, FastAPI

from notifier import ledger
from notifier.service import Notifier
from notifier.settings import NotifierSettings
from notifier.sms import SmsSender, TwilioSmsSender
from shared.db import create_pool, migrate
from shared.kafka import create_producer
from shared.topics import DECISIONS
from shared.web import (
    ApiError,
    BodyLimitMiddleware,
    bearer_auth,
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
    )


def create_app(
    settings: NotifierSettings,
    sender_factory: Callable[[NotifierSettings], SmsSender] = twilio_sender,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> FastAPI:
    state: dict[str, object] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url.get_secret_value())
        await migrate(pool, "notifier", "notifier")
        producer = create_producer(settings.kafka_bootstrap, "notifier")
        await producer.start()
        consumer = AIOKafkaConsumer(
            DECISIONS,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id="notifier",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="notifier",
        )
        await consumer.start()
        notifier = Notifier(
            pool,
            sender_factory(settings),
            producer,
            clock,
            clinic=settings.clinic_name,
            max_attempts=settings.max_attempts,
            interval=settings.dispatch_interval.total_seconds(),
        )
        state.update(pool=pool, producer=producer, consumer=consumer)
        tasks = [
            asyncio.create_task(notifier.consume(consumer), name="consume"),
            asyncio.create_task(notifier.dispatch_forever(), name="dispatch"),
        ]
        state["tasks"] = tasks
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await consumer.stop()
            await producer.stop()
            await pool.close()

    app = FastAPI(title="HFS recovery — notifier", version="1", lifespan=lifespan)
    app.add_middleware(BodyLimitMiddleware)
    install_error_handlers(app)
    auth = Depends(bearer_auth(settings.api_token))

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
        tasks = state.get("tasks")
        checks["loops"] = isinstance(tasks, list) and not any(t.done() for t in tasks)
        return checks

    install_probes(app, ready)

    @app.get("/v1/patients/{patient_id}/notifications", dependencies=[auth])
    async def notifications(patient_id: str) -> dict[str, list[dict[str, object]]]:
        try:
            return {"notifications": await ledger.for_patient(pool(), patient_id)}
        except (OSError, asyncpg.PostgresError):
            raise ApiError(503, "unavailable", "The database is unreachable. Retry.") from None

    @app.post("/v1/alerts/{notification_id}/ack", dependencies=[auth])
    async def ack(notification_id: uuid.UUID) -> dict[str, str]:
        outcome = await ledger.acknowledge(pool(), notification_id, clock())
        if outcome == "not_found":
            raise ApiError(404, "not_found", "No notification has that id.")
        if outcome == "not_a_page":
            raise ApiError(409, "not_a_page", "Only care-team pages can be acknowledged.")
        return {"notification_id": str(notification_id), "status": "acknowledged"}

    return app
