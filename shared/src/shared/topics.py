"""Topic names and their layout; ``python -m shared.topics`` creates them explicitly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.logs import configure_logging
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

PATIENT_EVENTS = "patient-events.v1"
CLOCK = "clock.v1"
DECISIONS = "decisions.v1"
DEADLETTER = "deadletter.v1"
#: What the SMS provider tells us about our messages (status callbacks, ``ACK`` replies);
#: written by ingest, read by the notifier. Keyed by message SID or ack code.
PROVIDER_EVENTS = "provider-events.v1"

#: Per-patient topics are co-partitioned: same count, keyed by ``patient_id``.
PATIENT_PARTITIONS = 6


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: tuple[tuple[str, str], ...] = ()


TOPICS: tuple[TopicSpec, ...] = (
    # The patient stream is the system of record for enrollments and reports: keep it.
    TopicSpec(PATIENT_EVENTS, PATIENT_PARTITIONS, (("retention.ms", "-1"),)),
    TopicSpec(CLOCK, PATIENT_PARTITIONS, (("retention.ms", str(7 * 24 * 3600 * 1000)),)),
    TopicSpec(DECISIONS, PATIENT_PARTITIONS, (("retention.ms", "-1"),)),
    TopicSpec(PROVIDER_EVENTS, PATIENT_PARTITIONS, (("retention.ms", str(30 * 24 * 3600 * 1000)),)),
    TopicSpec(DEADLETTER, 3, (("retention.ms", "-1"),)),
)


async def ensure_topics(bootstrap: str, specs: tuple[TopicSpec, ...] = TOPICS) -> list[str]:
    """Create missing topics; fail loudly if an existing one has the wrong partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name=s.name,
                            num_partitions=s.partitions,
                            replication_factor=1,
                            topic_configs=dict(s.config),
                        )
                        for s in missing
                    ]
                )
            created = [s.name for s in missing]
        described = {d["topic"]: d for d in await admin.describe_topics([s.name for s in specs])}
        for spec in specs:
            got = len(described[spec.name]["partitions"])
            if got != spec.partitions:
                raise RuntimeError(
                    f"topic {spec.name} has {got} partitions, expected {spec.partitions}"
                )
    finally:
        await admin.close()
    return created


def main() -> None:
    settings = CommonSettings()
    configure_logging("topics", settings.log_level)
    created = asyncio.run(ensure_topics(settings.kafka_bootstrap))
    log.info("topics ready", extra={"topics_created": created})
    sys.exit(0)


if __name__ == "__main__":
    main()
