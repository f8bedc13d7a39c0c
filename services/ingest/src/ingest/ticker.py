"""The production clock: with ``SIMULATED_CLOCK=0`` ingest publishes the wall-clock time to
every partition of ``clock.v1`` once a minute, so due work (check-in prompts, the day-183
check, lost to follow-up, escalations) fires on every worker for the partitions it owns.

Several ingest replicas each tick; that is harmless (a tick only moves time forward, and a
tick that finds nothing due costs nothing), and it keeps time moving when one is down.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.events import ClockAdvanced, ClockAdvancedPayload
from shared.kafka import publish
from shared.supervisor import beat
from shared.topics import CLOCK, PATIENT_PARTITIONS

log = logging.getLogger(__name__)


def tick_event(now: dt.datetime) -> ClockAdvanced:
    return ClockAdvanced(
        event_id=uuid.uuid4(),
        occurred_at=now,
        recorded_at=now,
        source="clock",
        payload=ClockAdvancedPayload(now=now),
    )


async def publish_tick(producer: AIOKafkaProducer, now: dt.datetime, topic: str = CLOCK) -> None:
    """One clock event on every partition of ``clock.v1``."""
    event = tick_event(now)
    await asyncio.gather(
        *(publish(producer, topic, event, partition=p) for p in range(PATIENT_PARTITIONS))
    )


async def run_ticker(
    producer: AIOKafkaProducer,
    wall_clock: Callable[[], dt.datetime],
    interval: float = 60.0,
) -> None:
    """Tick forever; a failed tick is logged and the next one catches up."""
    while True:
        beat()
        try:
            await publish_tick(producer, wall_clock())
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("clock tick not published: %s", type(exc).__name__)
        await asyncio.sleep(interval)
