"""Read, decide, write, emit: the state table, its data keys and timers (the only writer)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import faust

from assessor import erasure, projection
from assessor.cache import DecodedStates
from assessor.domain import (
    ALERT_URGENCY,
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
from assessor.metrics import ALERTS, DEAD, DECISIONS_OUT
from assessor.store import Store
from assessor.timers import TimerIndex, partition_of
from shared.crypto import KEY_SERVICE_DOWN, EventCodec, Keyring, KeyUnavailable
from shared.events import (
    ConsentChanged,
    ErasureProgressed,
    ErasureProgressedPayload,
    PatientEnrolled,
    PhaseChanged,
    PhaseChangedPayload,
    SendNotification,
    SendNotificationPayload,
    SymptomReported,
    encode_event,
)
from shared.logs import patient_ref
from shared.topics import PATIENT_PARTITIONS, RECOVERY_EVENTS

log = logging.getLogger(__name__)

T = TypeVar("T")

#: One input to apply: patient, input, the instant it happened at, source partition.
Work = tuple[str, Input, dt.datetime, int]

#: Builds the decision event for a patient's command (``assessor.app.command_event``).
CommandEvent = Callable[[str, SendNotificationPayload, dt.datetime], SendNotification]


def to_input(event: Any) -> Input | None:
    """The rules' input for a patient event, or None for a type the rules do not take."""
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


@dataclass(frozen=True)
class Topics:
    """The topics the pipeline writes to."""

    decisions: faust.types.TopicT
    recovery_events: faust.types.TopicT
    deadletter: faust.types.TopicT
    erasure_events: faust.types.TopicT


class Pipeline:
    """The patients' state (sealed with each patient's data key) and what changes it.

    Both agents touch the same patients' state; ``applying`` keeps each read-decide-write
    whole. Every dependency comes in through the constructor (``create_app`` builds them).
    """

    def __init__(
        self,
        *,
        app: faust.App,
        states: Any,
        topics: Topics,
        store: Store,
        keyring: Keyring,
        codec: EventCodec,
        decoded: DecodedStates,
        timers: TimerIndex,
        command_event: CommandEvent,
    ) -> None:
        self.app = app
        self.states = states
        self.topics = topics
        self.store = store
        self.keyring = keyring
        self.codec = codec
        self.decoded = decoded
        self.timers = timers
        self.command_event = command_event
        self.applying = asyncio.Lock()

    async def dead_letter(self, key: bytes | None, raw: bytes, topic: str, reason: str) -> None:
        DEAD.labels(topic).inc()
        await self.topics.deadletter.send(
            key=key,
            value=raw,
            headers={"reason": reason[:500].encode(), "topic": topic.encode()},
        )

    def load(self, patient_id: str) -> PatientState:
        stored = self.states.get(patient_id.encode())
        if stored:
            key = self.keyring.cached(patient_id)
            if key is None and erasure.is_sealed(stored):
                raise KeyUnavailable(patient_id)  # callers fetch keys first (with_keys)
            state: PatientState = self.decoded.get(
                patient_id, stored, lambda raw: erasure.open_state(key or b"", patient_id, raw)
            )
            return state
        return PatientState(patient_id=patient_id)

    async def until_reachable(self, step: Callable[[], Awaitable[T]]) -> T:
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

    async def with_keys(self, work: list[Work]) -> list[Work]:
        """The work whose patients have a data key (fetched into memory); a patient
        without one was erased (or never enrolled) and is left out."""
        keyed = await self.keyed_patients({w[0] for w in work})
        return [w for w in work if w[0] in keyed]

    async def keyed_patients(self, patients: set[str]) -> set[str]:
        await self.until_reachable(lambda: self.keyring.prefetch(patients))
        return {p for p in patients if self.keyring.cached(p) is not None}

    async def decode(self, raw: bytes) -> Any:
        return await self.until_reachable(lambda: self.codec.decode(raw))

    async def encode(self, event: Any) -> bytes:
        return await self.until_reachable(lambda: self.codec.encode(event))

    async def erase(
        self, patient_id: str, erasure_id: uuid.UUID, partition: int, now: dt.datetime
    ) -> None:
        """The assessor's part of an erasure: state (a tombstone in the changelog), timer,
        read model, the compacted recovery topic; then report it. Idempotent."""
        key = patient_id.encode()
        removed = 0
        if self.states.get(key) is not None:
            del self.states[key]
            removed += 1
        self.decoded.drop(patient_id)
        self.timers.set(partition, patient_id, None)
        removed += await erasure.delete_read_model(await self.store.get(), patient_id)
        await self.app.producer.send_and_wait(RECOVERY_EVENTS, key, None, None, None, None)
        self.keyring.forget(patient_id)
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
        await self.topics.erasure_events.send(key=key, value=await self.encode(report))
        log.info("patient erased in the assessor", extra={"patient": patient_ref(patient_id)})

    async def apply(self, work: list[Work], rejected: dict[int, Exception]) -> int:
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
                state = seen[0].state if seen is not None else self.load(patient_id)
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
            await projection.save_many(await self.store.get(), views)
        sent = []
        for patient_id, cmd, now in emitted:
            sent.append(
                await self.topics.decisions.send(
                    key=patient_id.encode(),
                    value=await self.encode(self.command_event(patient_id, cmd, now)),
                )
            )
        for patient_id, result in changed.items():
            moved = phase_event(before.get(patient_id), result)
            if moved is not None:
                sent.append(
                    await self.topics.recovery_events.send(
                        key=patient_id.encode(), value=encode_event(moved)
                    )
                )
        await asyncio.gather(*sent)
        for _, cmd, _ in emitted:
            DECISIONS_OUT.labels(cmd.kind).inc()
            if cmd.audience == "care_team" and cmd.kind in ALERT_URGENCY:
                ALERTS.labels(cmd.kind, cmd.urgency).inc()
        for patient_id, result in changed.items():
            # Reassign (never mutate) so the change reaches the changelog. Sealed with the
            # patient's key (fetched by keyed_patients before the batch).
            data_key = self.keyring.cached(patient_id)
            if data_key is None:
                raise KeyUnavailable(patient_id)
            raw = erasure.seal_state(
                data_key, patient_id, result.state.model_dump_json().encode(), result.next_due
            )
            self.states[patient_id.encode()] = raw
            self.decoded.put(patient_id, raw, result.state)
        for patient_id, (result, partition) in touched.items():
            self.timers.set(partition, patient_id, result.next_due)
        return len(emitted)

    def build_timers(self, partition: int) -> None:
        """Index a newly owned partition's patients from the state table (once): sealed
        states carry their next due instant beside the ciphertext."""
        entries = []
        for key, raw in self.states.items():
            if partition_of(key, PATIENT_PARTITIONS) == partition and raw:
                sealed, due = erasure.sealed_due(raw)
                if sealed:
                    entries.append((key.decode(), due))
                    continue
                state = PatientState.model_validate_json(raw)
                entries.append((state.patient_id, next_due(state)))
        self.timers.build(partition, entries)
