"""The assessor worker: faust agents stay thin; the rules live in ``assessor.domain``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import time
import uuid
from typing import Any, cast, get_args

import asyncpg
import faust
from faust.web import Request, Response, View
from faust.web.base import BlueprintManager
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from pydantic import ValidationError

from assessor import erasure, projection
from assessor.batches import apply_until_done, run_until_done
from assessor.cache import DecodedStates
from assessor.domain import (
    ALERT_URGENCY,
    AlertKind,
    ClockTicked,
    ConsentUpdated,
    Decision,
    Enrolled,
    Input,
    PatientState,
    Phase,
    Report,
    Reported,
    day_number,
    decide,
    next_due,
)
from assessor.settings import AssessorSettings
from assessor.timers import TimerIndex, partition_of
from shared.audit import AuditTrail
from shared.auth import Authenticator, Forbidden, Unauthorized, may
from shared.crypto import KEY_SERVICE_DOWN, EventCodec, KeyUnavailable
from shared.db import create_pool, migrate
from shared.errors import describe
from shared.events import (
    ClockAdvanced,
    ConsentChanged,
    ErasureProgressed,
    ErasureProgressedPayload,
    PatientEnrolled,
    PatientErased,
    PhaseChanged,
    PhaseChangedPayload,
    SendNotification,
    SendNotificationPayload,
    SymptomReported,
    encode_event,
)
from shared.kafka_security import faust_credentials
from shared.logs import logging_config, patient_ref, set_ref_key
from shared.topics import (
    CLOCK,
    DEADLETTER,
    DECISIONS,
    ERASURE_EVENTS,
    PATIENT_EVENTS,
    PATIENT_PARTITIONS,
    RECOVERY_EVENTS,
)
from shared.web import error_body

log = logging.getLogger(__name__)

EVENTS = Counter("assessor_events_total", "Events consumed", ["topic", "type", "outcome"])
DECISIONS_OUT = Counter("assessor_decisions_total", "Decisions emitted", ["kind"])
LATENCY = Histogram("assessor_event_seconds", "Time to process one event", ["type"])
ALERTS = Counter("assessor_alerts_total", "Care-team alerts raised", ["kind", "urgency"])
BATCH = Histogram(
    "assessor_batch_events",
    "Events per patient-events batch",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000),
)
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


#: One input to apply: patient, input, the instant it happened at, source partition.
Work = tuple[str, Input, dt.datetime, int]


def batch_partitions(events: list[Any]) -> list[int]:
    return sorted({e.message.partition for e in events})


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


def command_event(
    patient_id: str, cmd: SendNotificationPayload, now: dt.datetime
) -> SendNotification:
    """The decision's payload (the rules' command, which already names the patient's care
    team) in its envelope; its id derives from the dedupe key, so a replay repeats it
    exactly."""
    return SendNotification(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"decision:{cmd.dedupe_key}"),
        occurred_at=now,
        recorded_at=now,
        patient_id=patient_id,
        source="assessor",
        payload=cmd,
    )


def phase_event(old: Phase | None, decision: Decision) -> PhaseChanged | None:
    """``recovery.phase_changed`` when ``decision`` leaves the patient in another phase than
    ``old`` (the console's lists by phase are fed by it); its id derives from the change, so
    a replayed batch repeats it exactly."""
    after = decision.state
    new = decision.phase
    if new is None or new == old or after.profile is None or after.stream_time is None:
        return None
    at = after.stream_time
    return PhaseChanged(
        event_id=uuid.uuid5(
            uuid.NAMESPACE_URL, f"phase:{after.patient_id}:{old}:{new}:{at.isoformat()}"
        ),
        occurred_at=at,
        recorded_at=at,
        patient_id=after.patient_id,
        source="assessor",
        payload=PhaseChangedPayload(
            phase=new,
            previous=old,
            day=day_number(after.profile.surgery_date, at, after.profile.timezone),
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
                await migrate(pool, "audit", "shared.audit")
                self.pool = pool
            return self.pool


class _App(faust.App):
    """faust's app without its built-in web views: ``/router`` and ``/table`` (which would
    serve table contents, i.e. patient state, to anyone who reaches the port), ``/graph``,
    the statistics and the index page at ``/``. Only the assessor's own pages are served."""

    def _new_web(self) -> Any:
        web = super()._new_web()
        web.blueprints = BlueprintManager([])
        return web


def create_app(settings: AssessorSettings) -> faust.App:
    app = _App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials("assessor"),
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        store="memory://",
        datadir=settings.data_dir,
        web_port=settings.port,
        web_bind=settings.bind_host,
        web_host=settings.bind_host,
        topic_partitions=PATIENT_PARTITIONS,
        topic_replication_factor=1,
        topic_disable_leader=True,
        producer_acks=-1,
        # A batch's changelog and decision records go out in a few requests, not one each.
        producer_linger_ms=5,
        consumer_auto_offset_reset="earliest",
        web_in_thread=False,
        logging_config=logging_config("assessor", settings.log_level),
    )
    set_ref_key(settings.log_ref_key.get_secret_value())
    store = Store(settings.database_url.get_secret_value())
    authenticator = Authenticator(settings.oidc(), settings.api_token)
    trail = AuditTrail(settings.audit_url(), "assessor")
    keyring = settings.keyring()
    codec = EventCodec(keyring)

    patient_events = app.topic(
        PATIENT_EVENTS,
        key_serializer="raw",
        value_serializer="raw",
        partitions=PATIENT_PARTITIONS,
    )
    decisions = app.topic(DECISIONS, key_serializer="raw", value_serializer="raw")
    recovery_events = app.topic(RECOVERY_EVENTS, key_serializer="raw", value_serializer="raw")
    deadletter = app.topic(DEADLETTER, key_serializer="raw", value_serializer="raw")
    erasure_events = app.topic(ERASURE_EVENTS, key_serializer="raw", value_serializer="raw")
    states = app.Table(
        "patient-state",
        default=None,
        partitions=PATIENT_PARTITIONS,
        key_type=bytes,  # bytes → the "raw" codec, for the changelog's recovery too
        value_type=bytes,
        # The changelog partition comes from the key (murmur2, like ingest's producer), not
        # from "the current event", which a batch of events from several partitions lacks.
        use_partitioner=True,
    )
    within = settings.batch_within_ms / 1000

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

    decoded = DecodedStates(settings.state_cache)

    def load(patient_id: str) -> PatientState:
        stored = states.get(patient_id.encode())
        if stored:
            key = keyring.cached(patient_id)
            if key is None and erasure.is_sealed(stored):
                raise KeyUnavailable(patient_id)  # callers fetch keys first (with_keys)
            return decoded.get(
                patient_id, stored, lambda raw: erasure.open_state(key or b"", patient_id, raw)
            )
        return PatientState(patient_id=patient_id)

    async def until_reachable(step: Any) -> Any:
        """Ingest's key endpoint unreachable: wait (the stream holds), never skip."""
        delay = 0.2
        while True:
            try:
                return await step()
            except KEY_SERVICE_DOWN as exc:
                log.warning(
                    "data keys unavailable (%s); retrying in %.1fs", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def with_keys(work: list[Work]) -> list[Work]:
        """The work whose patients have a data key (fetched into memory); a patient
        without one was erased (or never enrolled) and is left out."""
        keyed = await keyed_patients({w[0] for w in work})
        return [w for w in work if w[0] in keyed]

    async def keyed_patients(patients: set[str]) -> set[str]:
        await until_reachable(lambda: keyring.prefetch(patients))
        return {p for p in patients if keyring.cached(p) is not None}

    async def decode(raw: bytes) -> Any:
        return await until_reachable(lambda: codec.decode(raw))

    async def encode(event: Any) -> bytes:
        value: bytes = await until_reachable(lambda: codec.encode(event))
        return value

    async def erase(
        patient_id: str, erasure_id: uuid.UUID, partition: int, now: dt.datetime
    ) -> None:
        """The assessor's part of an erasure: state (a tombstone in the changelog), timer,
        read model, the compacted recovery topic; then report it. Idempotent."""
        key = patient_id.encode()
        removed = 0
        if states.get(key) is not None:
            del states[key]
            removed += 1
        decoded.drop(patient_id)
        timers.set(partition, patient_id, None)
        removed += await erasure.delete_read_model(await store.get(), patient_id)
        await app.producer.send_and_wait(RECOVERY_EVENTS, key, None, None, None, None)
        keyring.forget(patient_id)
        report = ErasureProgressed(
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"erasure:{erasure_id}:assessor"),
            occurred_at=now,
            recorded_at=now,
            patient_id=patient_id,
            source="assessor",
            payload=ErasureProgressedPayload(
                erasure_id=erasure_id, store="assessor", outcome="done", removed=removed
            ),
        )
        await erasure_events.send(key=key, value=await encode(report))
        log.info("patient erased in the assessor", extra={"patient": patient_ref(patient_id)})

    async def apply(work: list[Work], rejected: dict[int, Exception]) -> int:
        """Read, decide, write, emit for a batch of inputs: the only place state changes.

        ``decide`` is pure, so the whole batch is decided in memory first (a patient that
        appears twice sees its own earlier result). Then, in this order: the read model is
        written in one transaction; the decisions are produced and their acks awaited; only
        then does the state table change. A crash at any point before the state changes
        leaves the old state, and the redelivered batch decides the same again (decision ids
        and dedupe keys are deterministic; the read model upsert is idempotent). An input the
        rules cannot decide is left out and put in ``rejected`` (by its index) instead; any
        other error is raised for ``batches.apply_until_done`` to retry or isolate.
        """
        rejected.clear()
        touched: dict[str, tuple[Decision, int]] = {}
        before: dict[str, Phase | None] = {}
        changed: dict[str, Decision] = {}
        emitted: list[tuple[str, SendNotificationPayload, dt.datetime]] = []
        for i, (patient_id, inp, now, partition) in enumerate(work):
            seen = touched.get(patient_id)
            try:
                state = seen[0].state if seen is not None else load(patient_id)
                result: Decision = decide(state, inp, now)
                before.setdefault(patient_id, result.previous_phase)
            except Exception as exc:  # a rule bug or a bad stored state: this input only
                rejected[i] = exc
                continue
            emitted.extend((patient_id, cmd, now) for cmd in result.commands)
            if result.state != state:
                changed[patient_id] = result
            touched[patient_id] = (result, partition)
        views = [v for d in changed.values() if (v := projection.recovery_view(d)) is not None]
        if views:
            await projection.save_many(await store.get(), views)
        sent = []
        for patient_id, cmd, now in emitted:
            sent.append(
                await decisions.send(
                    key=patient_id.encode(),
                    value=await encode(command_event(patient_id, cmd, now)),
                )
            )
        for patient_id, result in changed.items():
            moved = phase_event(before.get(patient_id), result)
            if moved is not None:
                sent.append(
                    await recovery_events.send(key=patient_id.encode(), value=encode_event(moved))
                )
        await asyncio.gather(*sent)
        for _, cmd, _ in emitted:
            DECISIONS_OUT.labels(cmd.kind).inc()
            if cmd.audience == "care_team" and cmd.kind in ALERT_URGENCY:
                ALERTS.labels(cmd.kind, cmd.urgency).inc()
        for patient_id, result in changed.items():
            # Reassign (never mutate) so the change reaches the changelog. Sealed with the
            # patient's key (fetched by keyed_patients before the batch).
            data_key = keyring.cached(patient_id)
            if data_key is None:
                raise KeyUnavailable(patient_id)
            raw = erasure.seal_state(
                data_key, patient_id, result.state.model_dump_json().encode(), result.next_due
            )
            states[patient_id.encode()] = raw
            decoded.put(patient_id, raw, result.state)
        for patient_id, (result, partition) in touched.items():
            timers.set(partition, patient_id, result.next_due)
        return len(emitted)

    async def on_patient_events(events: list[Any]) -> None:
        """One batch from ``patient-events.v1``: unparseable events to the dead letters."""
        t0 = time.perf_counter()
        work: list[Work] = []
        applied: list[tuple[str, str, str]] = []
        sources: list[Any] = []
        erased: list[tuple[PatientErased, int, Any]] = []
        # The batch's patients' keys in one request (records are keyed by patient id).
        keyed = {e.key.decode() for e in events if isinstance(e.key, bytes)}
        await until_reachable(lambda: keyring.prefetch(keyed))
        for event in events:
            raw, key = event.value, event.key
            try:
                parsed = await decode(raw)
            except KeyUnavailable:
                # An erased patient's earlier event (their key is gone): nothing to do.
                EVENTS.labels(PATIENT_EVENTS, "sealed", "erased").inc()
                continue
            except (ValidationError, ValueError) as exc:
                EVENTS.labels(PATIENT_EVENTS, "unknown", "dead_letter").inc()
                log.warning(
                    "unparseable event sent to the dead-letter topic: %s", type(exc).__name__
                )
                await dead_letter(key, raw, PATIENT_EVENTS, f"invalid: {describe(exc)}")
                continue
            if isinstance(parsed, PatientErased):
                erased.append((parsed, event.message.partition, event))
                continue
            inp = to_input(parsed)
            if inp is None or parsed.patient_id is None:
                EVENTS.labels(PATIENT_EVENTS, parsed.type, "ignored").inc()
                continue
            work.append((parsed.patient_id, inp, parsed.recorded_at, event.message.partition))
            applied.append((str(parsed.event_id), parsed.type, parsed.patient_id))
            sources.append(event)
        if erased:
            # The batch's other events of an erased patient are dropped with them.
            gone = {e.patient_id for e, _, _ in erased}
            keep = [i for i, w in enumerate(work) if w[0] not in gone]
            work = [work[i] for i in keep]
            applied = [applied[i] for i in keep]
            sources = [sources[i] for i in keep]
        if not work and not erased:
            return
        rejected: dict[int, Exception] = {}
        async with applying:
            # Keys first; a patient erased meanwhile drops out (indices follow the work).
            keyed = await keyed_patients({w[0] for w in work})
            if any(w[0] not in keyed for w in work):
                keep = [i for i, w in enumerate(work) if w[0] in keyed]
                applied = [applied[i] for i in keep]
                sources = [sources[i] for i in keep]
                work = [work[i] for i in keep]
            emitted = await apply_until_done(apply, work, rejected) if work else 0
            for gone_event, partition, source in erased:
                failed = await run_until_done(
                    functools.partial(
                        erase,
                        gone_event.patient_id,
                        gone_event.event_id,
                        partition,
                        gone_event.recorded_at,
                    )
                )
                if failed is not None:
                    # Not an outage: it would fail again, and holding the partition would
                    # stall every patient behind it. The erasure stays pending (the status
                    # endpoint shows it) until an operator replays the dead letter.
                    EVENTS.labels(PATIENT_EVENTS, gone_event.type, "dead_letter").inc()
                    log.error(
                        "erasure the assessor could not apply sent to the dead-letter topic: %s",
                        type(failed).__name__,
                        extra={
                            "event_id": str(gone_event.event_id),
                            "patient": patient_ref(gone_event.patient_id),
                        },
                    )
                    await dead_letter(
                        source.key,
                        source.value,
                        PATIENT_EVENTS,
                        f"erasure not applied: {describe(failed)}",
                    )
        for i, error in rejected.items():
            EVENTS.labels(PATIENT_EVENTS, applied[i][1], "dead_letter").inc()
            log.error(
                "event the assessor could not apply sent to the dead-letter topic: %s",
                type(error).__name__,
                extra={"event_id": applied[i][0], "patient": patient_ref(applied[i][2])},
            )
            await dead_letter(
                sources[i].key, sources[i].value, PATIENT_EVENTS, f"not applied: {describe(error)}"
            )
        applied = [a for i, a in enumerate(applied) if i not in rejected]
        BATCH.observe(len(events))
        per_event = (time.perf_counter() - t0) / len(events)
        for event_id, type_, patient_id in applied:
            EVENTS.labels(PATIENT_EVENTS, type_, "ok").inc()
            LATENCY.labels(type_).observe(per_event)
            log.debug(
                "event applied",
                extra={"event_id": event_id, "type": type_, "patient": patient_ref(patient_id)},
            )
        log.info(
            "batch applied",
            extra={
                "events": len(applied),
                "commands": emitted,
                "partitions": batch_partitions(events),
            },
        )

    def build_timers(partition: int) -> None:
        """Index a newly owned partition's patients from the state table (once): sealed
        states carry their next due instant beside the ciphertext."""
        entries = []
        for key, raw in states.items():
            if partition_of(key, PATIENT_PARTITIONS) == partition and raw:
                sealed, due = erasure.sealed_due(raw)
                if sealed:
                    entries.append((key.decode(), due))
                    continue
                state = PatientState.model_validate_json(raw)
                entries.append((state.patient_id, next_due(state)))
        timers.build(partition, entries)

    async def on_tick_raw(raw: bytes, partition: int) -> None:
        event = await decode(raw)
        if not isinstance(event, ClockAdvanced):
            raise ValueError(f"unexpected {event.type} on {CLOCK}")
        now = event.payload.now
        with LATENCY.labels(event.type).time():
            async with applying:
                if not timers.built(partition):
                    build_timers(partition)
                due = timers.pop_due(partition, now)
                work: list[Work] = await with_keys(
                    [(p, ClockTicked(), now, partition) for p in due]
                )
                rejected: dict[int, Exception] = {}
                if work:
                    await apply_until_done(apply, work, rejected)
        for i, error in rejected.items():
            log.error(
                "a due patient the assessor could not apply: %s",
                type(error).__name__,
                extra={"partition": partition, "patient": patient_ref(work[i][0])},
            )
        try:
            await projection.save_clock(await store.get(), partition, now)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Only the read API's "day as of now" uses it, and the next tick moves it on.
            log.warning("clock not recorded in the read model: %s", type(exc).__name__)
        EVENTS.labels(CLOCK, event.type, "ok").inc()
        if due:
            log.info("tick", extra={"partition": partition, "due": len(due)})

    @app.agent(patient_events, concurrency=1)
    async def on_patient_event(stream: Any) -> None:
        # Table writes wait in faust's producer buffer, which holds back the stream (and
        # warns) past 100 messages: room for a whole batch's writes.
        app.producer.buffer.max_messages = max(100, 2 * settings.batch_max)
        # Acknowledged (and so committed) only after the body returns for the whole batch.
        async for events in stream.take_events(settings.batch_max, within=within):
            await on_patient_events(list(events))

    @app.agent(clock, concurrency=1)
    async def on_tick(stream: Any) -> None:
        async for event in stream.events():
            try:
                await on_tick_raw(event.value, event.message.partition)
            except (ValidationError, ValueError) as exc:
                EVENTS.labels(CLOCK, "unknown", "dead_letter").inc()
                log.warning("bad clock event sent to the dead-letter topic: %s", type(exc).__name__)
                await dead_letter(event.key, event.value, CLOCK, f"invalid: {describe(exc)}")

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == CLOCK:
                timers.drop(tp.partition)

    @app.task  # type: ignore[untyped-decorator]
    async def open_store() -> None:
        await store.get()

    def error(
        view: View, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        response: Response = view.bytes(
            error_body(code, message), content_type="application/json", status=status
        )
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    @app.page("/v1/patients/{patient_id}/recovery")
    class RecoveryView(View):
        async def get(self, request: Request, patient_id: str) -> Response:
            try:
                caller = await authenticator.authenticate(request.headers.get("Authorization"))
            except Unauthorized as exc:
                return error(
                    self,
                    401,
                    "unauthorized",
                    exc.message,
                    {"WWW-Authenticate": exc.www_authenticate},
                )
            found = None
            try:
                if may(caller, "patient.read"):
                    found = await projection.load(await store.get(), patient_id)
                remote = getattr(request, "remote", None)  # aiohttp's: the client's address
                await trail.guard(
                    caller,
                    "patient.read",
                    patient_id=patient_id,
                    resource="recovery",
                    team=found[1] if found else None,
                    source=str(remote) if remote else None,
                )
            except Forbidden:
                return error(self, 403, "forbidden", "Your credentials do not allow this.")
            except (TimeoutError, OSError, asyncpg.PostgresError):
                return error(self, 503, "unavailable", "The database is unreachable. Retry.")
            if found is None:
                return error(self, 404, "unknown_patient", "No recovery record for that id.")
            return self.json(found[0])

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
