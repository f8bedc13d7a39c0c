"""The faust agents: patient-events batches and clock ticks, parsed and handed to the pipeline."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import asyncpg
import faust
from pydantic import ValidationError

from assessor import projection
from assessor.batches import apply_until_done, run_until_done
from assessor.domain import ClockTicked
from assessor.metrics import BATCH, EVENTS, LATENCY
from assessor.pipeline import Pipeline, Work, to_input
from shared.crypto import KeyUnavailable
from shared.errors import describe
from shared.events import ClockAdvanced, PatientErased
from shared.logs import patient_ref
from shared.topics import CLOCK, PATIENT_EVENTS

log = logging.getLogger(__name__)


def batch_partitions(events: list[Any]) -> list[int]:
    return sorted({e.message.partition for e in events})


async def on_patient_events(pipeline: Pipeline, events: list[Any]) -> None:
    """One batch from ``patient-events.v1``: unparseable events to the dead letters."""
    t0 = time.perf_counter()
    work: list[Work] = []
    applied: list[tuple[str, str, str]] = []
    sources: list[Any] = []
    erased: list[tuple[PatientErased, int, Any]] = []
    # The batch's patients' keys in one request (records are keyed by patient id).
    keyed = {e.key.decode() for e in events if isinstance(e.key, bytes)}
    await pipeline.until_reachable(lambda: pipeline.keyring.prefetch(keyed))
    for event in events:
        raw, key = event.value, event.key
        try:
            parsed = await pipeline.decode(raw)
        except KeyUnavailable:
            # An erased patient's earlier event (their key is gone): nothing to do.
            EVENTS.labels(PATIENT_EVENTS, "sealed", "erased").inc()
            continue
        except (ValidationError, ValueError) as exc:
            EVENTS.labels(PATIENT_EVENTS, "unknown", "dead_letter").inc()
            log.warning("unparseable event sent to the dead-letter topic: %s", type(exc).__name__)
            await pipeline.dead_letter(key, raw, PATIENT_EVENTS, f"invalid: {describe(exc)}")
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
    async with pipeline.applying:
        # Keys first; a patient erased meanwhile drops out (indices follow the work).
        keyed = await pipeline.keyed_patients({w[0] for w in work})
        if any(w[0] not in keyed for w in work):
            keep = [i for i, w in enumerate(work) if w[0] in keyed]
            applied = [applied[i] for i in keep]
            sources = [sources[i] for i in keep]
            work = [work[i] for i in keep]
        emitted = await apply_until_done(pipeline.apply, work, rejected) if work else 0
        for gone_event, partition, source in erased:
            await erase_or_dead_letter(pipeline, gone_event, partition, source)
    for i, error in rejected.items():
        EVENTS.labels(PATIENT_EVENTS, applied[i][1], "dead_letter").inc()
        log.error(
            "event the assessor could not apply sent to the dead-letter topic: %s",
            type(error).__name__,
            extra={"event_id": applied[i][0], "patient": patient_ref(applied[i][2])},
        )
        await pipeline.dead_letter(
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


async def erase_or_dead_letter(
    pipeline: Pipeline, gone_event: PatientErased, partition: int, source: Any
) -> None:
    """Apply one erasure, retrying outages; any other failure dead-letters its event."""
    failed = await run_until_done(
        functools.partial(
            pipeline.erase,
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
        await pipeline.dead_letter(
            source.key,
            source.value,
            PATIENT_EVENTS,
            f"erasure not applied: {describe(failed)}",
        )


async def on_tick_raw(pipeline: Pipeline, raw: bytes, partition: int) -> None:
    """One ``clock.advanced`` record: apply the partition's patients now due."""
    event = await pipeline.decode(raw)
    if not isinstance(event, ClockAdvanced):
        raise ValueError(f"unexpected {event.type} on {CLOCK}")
    now = event.payload.now
    with LATENCY.labels(event.type).time():
        async with pipeline.applying:
            if not pipeline.timers.built(partition):
                pipeline.build_timers(partition)
            due = pipeline.timers.pop_due(partition, now)
            work: list[Work] = await pipeline.with_keys(
                [(p, ClockTicked(), now, partition) for p in due]
            )
            rejected: dict[int, Exception] = {}
            if work:
                await apply_until_done(pipeline.apply, work, rejected)
    for i, error in rejected.items():
        log.error(
            "a due patient the assessor could not apply: %s",
            type(error).__name__,
            extra={"partition": partition, "patient": patient_ref(work[i][0])},
        )
    try:
        await projection.save_clock(await pipeline.store.get(), partition, now)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Only the read API's "day as of now" uses it, and the next tick moves it on.
        log.warning("clock not recorded in the read model: %s", type(exc).__name__)
    EVENTS.labels(CLOCK, event.type, "ok").inc()
    if due:
        log.info("tick", extra={"partition": partition, "due": len(due)})


def install_agents(
    app: faust.App,
    pipeline: Pipeline,
    *,
    patient_events: faust.types.TopicT,
    clock: faust.types.TopicT,
    batch_max: int,
    batch_within_ms: int,
) -> None:
    """Register the agents, the rebalance hook and the store's start-up task on ``app``."""
    within = batch_within_ms / 1000

    @app.agent(patient_events, concurrency=1)
    async def on_patient_event(stream: Any) -> None:
        # Table writes wait in faust's producer buffer, which holds back the stream (and
        # warns) past 100 messages: room for a whole batch's writes.
        app.producer.buffer.max_messages = max(100, 2 * batch_max)
        # Acknowledged (and so committed) only after the body returns for the whole batch.
        async for events in stream.take_events(batch_max, within=within):
            await on_patient_events(pipeline, list(events))

    @app.agent(clock, concurrency=1)
    async def on_tick(stream: Any) -> None:
        async for event in stream.events():
            try:
                await on_tick_raw(pipeline, event.value, event.message.partition)
            except (ValidationError, ValueError) as exc:
                EVENTS.labels(CLOCK, "unknown", "dead_letter").inc()
                log.warning("bad clock event sent to the dead-letter topic: %s", type(exc).__name__)
                await pipeline.dead_letter(
                    event.key, event.value, CLOCK, f"invalid: {describe(exc)}"
                )

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_revoked(app: faust.App, revoked: Any, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == CLOCK:
                pipeline.timers.drop(tp.partition)

    @app.task  # type: ignore[untyped-decorator]
    async def open_store() -> None:
        await pipeline.store.get()
