"""The assessor worker: faust agents stay thin; the rules live in ``assessor.rules``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import uuid
from typing import Any, cast, get_args

import asyncpg
import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from pydantic import ValidationError

from assessor import projection
from assessor.rules import (
    ALERT_URGENCY,
    AlertKind,
    ClockTicked,
    ConsentUpdated,
    Decision,
    Enrolled,
    Input,
    Notify,
    PatientState,
    Phase,
    Report,
    Reported,
    decide,
    next_due,
)
from assessor.settings import AssessorSettings
from assessor.timers import TimerIndex, partition_of
from shared.db import create_pool, migrate
from shared.events import (
    ClockAdvanced,
    ConsentChanged,
    PatientEnrolled,
    SendNotification,
    SendNotificationPayload,
    SymptomReported,
    encode_event,
    parse_event,
)
from shared.logs import logging_config, patient_ref
from shared.topics import CLOCK, DEADLETTER, DECISIONS, PATIENT_EVENTS, PATIENT_PARTITIONS
from shared.web import error_body

log = logging.getLogger(__name__)

EVENTS = Counter("assessor_events_total", "Events consumed", ["topic", "type", "outcome"])
DECISIONS_OUT = Counter("assessor_decisions_total", "Decisions emitted", ["kind"])
LATENCY = Histogram("assessor_event_seconds", "Time to process one event", ["type"])
ALERTS = Counter("assessor_alerts_total", "Care-team alerts raised", ["kind", "urgency"])
DEAD = Counter("assessor_dead_letters_total", "Messages sent to the dead-letter topic", ["topic"])
# Computed from the read model on each scrape (every replica reports the whole cohort:
# aggregate with max(), not sum()). Month = whole months since surgery, capped at 12.
PHASES = Gauge("assessor_patients_by_phase", "Enrolled patients by current phase", ["phase"])
PHASES_BY_MONTH = Gauge(
    "assessor_patients_by_month",
    "Enrolled patients by month since surgery and current phase",
    ["month", "phase"],
)
ALL_PHASES = get_args(Phase)
for _topic in (PATIENT_EVENTS, CLOCK):
    EVENTS.labels(_topic, "unknown", "dead_letter")
    DEAD.labels(_topic)
for _kind in get_args(AlertKind):
    ALERTS.labels(_kind, ALERT_URGENCY[_kind])
for _type in ("patient.enrolled", "symptom.reported", "consent.changed", "clock.advanced"):
    LATENCY.labels(_type)
for _kind in ("reassurance", "checkin_prompt"):
    DECISIONS_OUT.labels(_kind)


async def refresh_cohort_metrics(pool: asyncpg.Pool) -> None:
    """Set the phase gauges from the projection; the day moves on with the partition clock."""
    rows = await pool.fetch(
        "SELECT r.phase, LEAST(12, FLOOR((r.day + GREATEST(0, EXTRACT(EPOCH FROM"
        " (COALESCE(c.now, r.stream_time) - r.stream_time)) / 86400)) / 30.4375))::int AS month,"
        " count(*) AS n FROM assessor.recovery r"
        " LEFT JOIN (SELECT max(now) AS now FROM assessor.clock) c ON true"
        " WHERE r.phase IS NOT NULL GROUP BY 1, 2"
    )
    by_phase = dict.fromkeys(ALL_PHASES, 0)
    PHASES_BY_MONTH.clear()
    for row in rows:
        by_phase[row["phase"]] = by_phase.get(row["phase"], 0) + row["n"]
        PHASES_BY_MONTH.labels(str(max(0, row["month"])), row["phase"]).set(row["n"])
    for phase, n in by_phase.items():
        PHASES.labels(phase).set(n)


def to_input(event: Any) -> Input | None:
    if isinstance(event, PatientEnrolled):
        return Enrolled(event.payload)
    if isinstance(event, ConsentChanged):
        return ConsentUpdated(sms_consent=event.payload.sms_consent)
    if isinstance(event, SymptomReported):
        p = event.payload
        return Reported(
            Report(
                event_id=event.event_id,
                occurred_at=event.occurred_at,
                severity=p.severity,
                note=p.note,
            )
        )
    return None


def command_event(patient_id: str, cmd: Notify, now: dt.datetime) -> SendNotification:
    """The decision event; its id derives from the dedupe key, so a replay repeats it exactly."""
    return SendNotification(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"decision:{cmd.dedupe_key}"),
        occurred_at=now,
        recorded_at=now,
        patient_id=patient_id,
        source="assessor",
        payload=SendNotificationPayload(
            dedupe_key=cmd.dedupe_key,
            kind=cmd.kind,
            audience=cmd.audience,
            urgency=cmd.urgency,
            to=cmd.to,
            backup_to=cmd.backup_to,
            language=cmd.language,
            timezone=cmd.timezone,
            due_at=cmd.due_at,
            facts=cmd.facts,
            evidence=cmd.evidence,
            rule=cmd.rule,
        ),
    )


class Store:
    """The PostgreSQL pool, opened once the worker starts (never at import)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        async with self._lock:
            if self.pool is None:
                pool = await create_pool(self.url)
                await migrate(pool, "assessor", "assessor")
                self.pool = pool
            return self.pool


def create_app(settings: AssessorSettings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=settings.data_dir,
        web_port=settings.port,
        web_bind=settings.bind_host,
        web_host=settings.bind_host,
        topic_partitions=PATIENT_PARTITIONS,
        topic_replication_factor=1,
        topic_disable_leader=True,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        web_in_thread=False,
        logging_config=logging_config("assessor", settings.log_level),
    )
    store = Store(settings.database_url.get_secret_value())
    token = settings.api_token.get_secret_value().encode()

    patient_events = app.topic(
        PATIENT_EVENTS,
        key_serializer="raw",
        value_serializer="raw",
        partitions=PATIENT_PARTITIONS,
    )
    decisions = app.topic(DECISIONS, key_serializer="raw", value_serializer="raw")
    deadletter = app.topic(DEADLETTER, key_serializer="raw", value_serializer="raw")
    states = app.Table(
        "patient-state",
        default=None,
        partitions=PATIENT_PARTITIONS,
        key_type=bytes,  # bytes → the "raw" codec, for the changelog's recovery too
        value_type=bytes,
    )

    clock = app.topic(
        CLOCK, key_serializer="raw", value_serializer="raw", partitions=PATIENT_PARTITIONS
    )
    timers = TimerIndex()
    # Both agents touch the same patients' state; one lock keeps each read-decide-write whole.
    applying = asyncio.Lock()

    async def dead_letter(key: bytes | None, raw: bytes, topic: str, reason: str) -> None:
        DEAD.labels(topic).inc()
        await deadletter.send(
            key=key,
            value=raw,
            headers={"reason": reason[:500].encode(), "topic": topic.encode()},
        )

    def load(patient_id: str) -> PatientState:
        stored = states.get(patient_id.encode())
        if stored:
            return PatientState.model_validate_json(stored)
        return PatientState(patient_id=patient_id)

    async def apply(patient_id: str, inp: Input, now: dt.datetime, partition: int) -> int:
        """Read, decide, emit, write: the only place state changes."""
        state = load(patient_id)
        result: Decision = decide(state, inp, now)
        for cmd in result.commands:
            await decisions.send(
                key=patient_id.encode(),
                value=encode_event(command_event(patient_id, cmd, now)),
            )
            DECISIONS_OUT.labels(cmd.kind).inc()
            if cmd.audience == "care_team" and cmd.kind in ALERT_URGENCY:
                ALERTS.labels(cmd.kind, cmd.urgency).inc()
        if result.state != state:
            # Reassign (never mutate) so the change reaches the changelog.
            states[patient_id.encode()] = result.state.model_dump_json().encode()
            view = projection.recovery_view(result.state)
            if view is not None:
                await projection.save(await store.get(), view)
        timers.set(partition, patient_id, next_due(result.state))
        return len(result.commands)

    async def on_patient_event_raw(key: bytes | None, raw: bytes, partition: int) -> None:
        event = parse_event(raw)
        inp = to_input(event)
        if inp is None or event.patient_id is None:
            EVENTS.labels(PATIENT_EVENTS, event.type, "ignored").inc()
            return
        with LATENCY.labels(event.type).time():
            async with applying:
                emitted = await apply(event.patient_id, inp, event.recorded_at, partition)
        EVENTS.labels(PATIENT_EVENTS, event.type, "ok").inc()
        log.info(
            "event applied",
            extra={
                "event_id": str(event.event_id),
                "type": event.type,
                "patient": patient_ref(event.patient_id),
                "commands": emitted,
            },
        )

    def build_timers(partition: int) -> None:
        """Index a newly owned partition's patients from the state table (once)."""
        entries = []
        for key, raw in states.items():
            if partition_of(key, PATIENT_PARTITIONS) == partition and raw:
                state = PatientState.model_validate_json(raw)
                entries.append((state.patient_id, next_due(state)))
        timers.build(partition, entries)

    async def on_tick_raw(raw: bytes, partition: int) -> None:
        event = parse_event(raw)
        if not isinstance(event, ClockAdvanced):
            raise ValueError(f"unexpected {event.type} on {CLOCK}")
        now = event.payload.now
        with LATENCY.labels(event.type).time():
            async with applying:
                if not timers.built(partition):
                    build_timers(partition)
                due = timers.pop_due(partition, now)
                for patient_id in due:
                    await apply(patient_id, ClockTicked(), now, partition)
        await projection.save_clock(await store.get(), partition, now)
        EVENTS.labels(CLOCK, event.type, "ok").inc()
        if due:
            log.info("tick", extra={"partition": partition, "due": len(due)})

    @app.agent(patient_events, concurrency=1)
    async def on_patient_event(stream: Any) -> None:
        async for event in stream.events():
            raw, key = event.value, event.key
            try:
                await on_patient_event_raw(key, raw, event.message.partition)
            except (ValidationError, ValueError) as exc:
                EVENTS.labels(PATIENT_EVENTS, "unknown", "dead_letter").inc()
                log.warning(
                    "unparseable event sent to the dead-letter topic: %s", type(exc).__name__
                )
                await dead_letter(key, raw, PATIENT_EVENTS, f"invalid: {exc}")

    @app.agent(clock, concurrency=1)
    async def on_tick(stream: Any) -> None:
        async for event in stream.events():
            try:
                await on_tick_raw(event.value, event.message.partition)
            except (ValidationError, ValueError) as exc:
                EVENTS.labels(CLOCK, "unknown", "dead_letter").inc()
                log.warning("bad clock event sent to the dead-letter topic: %s", type(exc).__name__)
                await dead_letter(event.key, event.value, CLOCK, f"invalid: {exc}")

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == CLOCK:
                timers.drop(tp.partition)

    @app.task  # type: ignore[untyped-decorator]
    async def open_store() -> None:
        await store.get()

    def authorized(request: Request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)

    def error(view: View, status: int, code: str, message: str) -> Response:
        return view.bytes(error_body(code, message), content_type="application/json", status=status)

    @app.page("/v1/patients/{patient_id}/recovery")
    class RecoveryView(View):
        async def get(self, request: Request, patient_id: str) -> Response:
            if not authorized(request):
                return error(self, 401, "unauthorized", "A valid bearer token is required.")
            try:
                doc = await projection.load(await store.get(), patient_id)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                return error(self, 503, "unavailable", "The database is unreachable. Retry.")
            if doc is None:
                return error(self, 404, "unknown_patient", "No recovery record for that id.")
            return self.json(doc)

    @app.page("/healthz")
    class Healthz(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Readyz(View):
        async def get(self, request: Request) -> Response:
            checks = {"postgres": False, "kafka": False}
            with contextlib.suppress(Exception):
                pool = await asyncio.wait_for(store.get(), 2)
                await asyncio.wait_for(pool.fetchval("SELECT 1"), 2)
                checks["postgres"] = True
            consumer = app.consumer
            checks["kafka"] = bool(
                not app.rebalancing
                and consumer is not None
                and consumer.assignment()
                and cast(Any, app.tables).recovery.completed.is_set()
            )
            ok = all(checks.values())
            return self.json(
                {"status": "ok" if ok else "unavailable", "checks": checks},
                status=200 if ok else 503,
            )

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            try:
                await refresh_cohort_metrics(await asyncio.wait_for(store.get(), 2))
            except Exception:
                log.warning("cohort metrics refresh failed", exc_info=True)
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    return app
