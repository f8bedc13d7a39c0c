"""The notifier: its parts (``Intake``, ``Sending``, ``Paging``) composed, and its loops
for the supervisor, each with the same error policy: an outage is waited out, anything
else is dead-lettered (a record) or logged (a round), so nothing stalls a loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord

from notifier.base import Handler
from notifier.counters import COMMITS_REFUSED
from notifier.intake import Intake
from notifier.paging import Paging
from notifier.policy import SimulatedClock
from notifier.sending import Sending
from shared.errors import describe
from shared.supervisor import Loop, beat
from shared.transient import is_transient

log = logging.getLogger(__name__)

#: What a database outage raises. Besides server errors and broken sockets, a connection
#: the server dropped mid-query can be left "in another operation": the next query on it
#: fails with ``InternalClientError`` (seen in the PostgreSQL drill, where it ended the
#: clock loop for good); the pool replaces that connection, so it is retried like the rest.
DATABASE_DOWN = (
    TimeoutError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class Notifier(Intake, Sending, Paging):
    """Every part of the notifier over one set of collaborators (see ``NotifierBase``)."""

    # -- consuming ------------------------------------------------------------------------------

    async def consume(self, consumer: AIOKafkaConsumer) -> None:
        """Decisions from ``decisions.v1``."""
        await self.consume_topic(consumer, self.on_record)

    async def consume_topic(
        self, consumer: AIOKafkaConsumer, handle: Handler, *, commit: bool = True
    ) -> None:
        """Handle every record, then commit the batch's offsets (only after all are done).
        A restart (after a crash mid-batch) first goes back to the committed offsets (without
        commits: to the beginning), so no record fetched but not handled is skipped."""
        await self._rewind(consumer, to_committed=commit)
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            for records in batches.values():
                for rec in records:
                    await self._until_done(handle, rec)
            if batches:
                if commit:
                    await self._commit(consumer)
                self.wake.set()
            beat()

    @staticmethod
    async def _rewind(consumer: AIOKafkaConsumer, *, to_committed: bool) -> None:
        for tp in consumer.assignment():
            committed = await consumer.committed(tp) if to_committed else None
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit what was handled. After a stall longer than the group's session (a paused
        process, CPU starvation) the group has moved on and the commit fails: the records
        go to whoever owns their partition now, and are handled again (idempotently) there
        or here. Carrying on, not dying, is what keeps this loop alive."""
        try:
            await consumer.commit()
        except (CommitFailedError, IllegalStateError) as exc:
            COMMITS_REFUSED.inc()
            log.warning("offset commit refused after a rebalance: %s", type(exc).__name__)

    async def _until_done(self, handle: Handler, rec: ConsumerRecord[Any, Any]) -> None:
        """Never skip an event: while the database is down, wait and try again. A database
        error that is not an outage (a value it refuses) fails the same way every time:
        that record is dead-lettered, so it cannot hold the partition behind it."""
        delay = 0.5
        while True:
            try:
                await handle(rec)
                return
            except DATABASE_DOWN as exc:
                if not is_transient(exc):
                    log.error("record not applied, dead-lettered: %s", type(exc).__name__)
                    await self._dead_letter(rec, rec.topic, f"not applied: {describe(exc)}")
                    return
                log.warning("ledger unavailable, retrying: %s", type(exc).__name__)
                beat()  # waiting for the database is not being stuck
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    # -- dispatching ----------------------------------------------------------------------------

    def loops(
        self, consumers: dict[str, AIOKafkaConsumer], clock: SimulatedClock | None
    ) -> dict[str, Loop]:
        """Every background loop of the notifier, by name, for the supervisor: decisions,
        consent and provider events, the clock (simulated only), and dispatch, escalation
        and reconciliation, each on its own so no failure in one holds up another."""
        out: dict[str, Loop] = {
            "decisions": lambda: self.consume(consumers["decisions"]),
            "consent": lambda: self.consume_topic(consumers["consent"], self.on_patient_event),
            "provider-events": lambda: self.consume_topic(
                consumers["provider"], self.on_provider_event
            ),
            "dispatch": self.dispatch_forever,
            "escalation": self.escalate_forever,
            "reconciliation": self.reconcile_forever,
        }
        if clock is not None:
            out["clock"] = lambda: self.consume_topic(
                consumers["clock"], self.on_clock_event(clock), commit=False
            )
        return out

    async def _forever(
        self, name: str, once: Callable[[], Awaitable[int]], idle: float, *, woken: bool = False
    ) -> None:
        """``once`` round after round; a database outage pauses it (the round is tried again),
        and a round that did nothing waits ``idle`` seconds (``woken``: or until ``wake``)."""
        while True:
            beat()
            try:
                done = await once()
            except DATABASE_DOWN as exc:
                log.warning("%s paused: %s", name, type(exc).__name__)
                done = 0
            if done:
                continue
            if woken:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.interval)
                self.wake.clear()
            else:
                await asyncio.sleep(max(idle, 0.05))

    async def dispatch_forever(self) -> None:
        await self._forever("dispatch", self.dispatch_once, self.interval, woken=True)

    async def escalate_forever(self) -> None:
        await self._forever("escalation", self.escalate_once, self.interval)

    async def reconcile_forever(self) -> None:
        await self._forever(
            "reconciliation", self.reconcile_once, self.policy.reconcile_every.total_seconds()
        )

    async def tick(self) -> int:
        """One round: escalate (first: nothing below may hold it up), reconcile (now and
        then), dispatch."""
        await self.escalate_once()
        wall = self.wall()
        if wall - self._last_reconcile >= self.policy.reconcile_every:
            self._last_reconcile = wall
            await self.reconcile_once()
        return await self.dispatch_once()
