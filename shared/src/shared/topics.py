"""Topic names and their layout; ``python -m shared.topics`` creates them explicitly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from pydantic import Field

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

#: How long a dead letter is kept before Kafka deletes it.
DEADLETTER_RETENTION_DAYS = 30

_DAY_MS = 24 * 3600 * 1000

#: Phase changes the assessor decided (keyed by patient; compacted: the latest per patient).
RECOVERY_EVENTS = "recovery-events.v1"
#: What clinicians did with alerts in the console (owned, acknowledged, closed), by patient.
CARE_TEAM_EVENTS = "care-team-events.v1"

#: Erasure progress: each store reports here once it erased a patient; ingest, which
#: answers ``GET /v1/patients/{id}/erasure``, reads it. Keyed by patient.
ERASURE_EVENTS = "erasure-events.v1"

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
    TopicSpec(RECOVERY_EVENTS, PATIENT_PARTITIONS, (("cleanup.policy", "compact"),)),
    TopicSpec(CARE_TEAM_EVENTS, PATIENT_PARTITIONS, (("retention.ms", "-1"),)),
    TopicSpec(ERASURE_EVENTS, PATIENT_PARTITIONS, (("retention.ms", str(30 * _DAY_MS)),)),
    # Dead letters are for an operator to inspect and replay, not an archive: a month.
    TopicSpec(
        DEADLETTER, 3, (("retention.ms", str(DEADLETTER_RETENTION_DAYS * 24 * 3600 * 1000)),)
    ),
)


class TopicSettings(CommonSettings):
    #: 1 on a single broker; 3 on a three-broker cluster (then min.insync.replicas is 2).
    replication_factor: int = Field(default=1, ge=1, validation_alias="TOPIC_REPLICATION_FACTOR")


async def ensure_topics(
    bootstrap: str, specs: tuple[TopicSpec, ...] = TOPICS, replication_factor: int = 1
) -> list[str]:
    """Create missing topics; fail loudly if an existing one has the wrong partition count."""
    durability = (
        {"min.insync.replicas": str(min(2, replication_factor))} if replication_factor > 1 else {}
    )
    from shared.kafka_security import client_options  # imports this module's topic names

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=15000, **client_options()
    )
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
                            replication_factor=replication_factor,
                            topic_configs=dict(s.config) | durability,
                        )
                        for s in missing
                    ]
                )
            created = [s.name for s in missing]
        # A topic just created may be described with no partitions until the controller's
        # metadata reaches the broker: ask again for a while before judging the counts.
        names = [s.name for s in specs]
        for _ in range(40):
            described = {d["topic"]: d for d in await admin.describe_topics(names)}
            if all(described.get(n, {}).get("partitions") for n in names):
                break
            await asyncio.sleep(0.25)
        for spec in specs:
            got = len(described.get(spec.name, {}).get("partitions") or [])
            if got != spec.partitions:
                raise RuntimeError(
                    f"topic {spec.name} has {got} partitions, expected {spec.partitions}"
                )
    finally:
        await admin.close()
    return created


def main() -> None:
    settings = TopicSettings()
    configure_logging("topics", settings.log_level)
    created = asyncio.run(
        ensure_topics(settings.kafka_bootstrap, replication_factor=settings.replication_factor)
    )
    log.info("topics ready", extra={"topics_created": created})
    sys.exit(0)


if __name__ == "__main__":
    main()
