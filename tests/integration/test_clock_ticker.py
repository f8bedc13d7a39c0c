"""The production ticker writes the time to every partition of a clock topic (real Kafka;
a scratch topic laid out like clock.v1, so the running stack's clock is left alone)."""

from __future__ import annotations

import datetime as dt
import secrets

from aiokafka import AIOKafkaConsumer, TopicPartition

from ingest.ticker import publish_tick
from shared.events import ClockAdvanced, parse_event
from shared.kafka import create_producer
from shared.kafka_security import client_options
from shared.topics import PATIENT_PARTITIONS, TopicSpec, ensure_topics
from tests.integration.stack_env import KAFKA_BOOTSTRAP


async def test_a_tick_lands_on_every_partition() -> None:
    topic = "it-clock-" + secrets.token_hex(4)
    await ensure_topics(KAFKA_BOOTSTRAP, (TopicSpec(topic, PATIENT_PARTITIONS),))
    tps = [TopicPartition(topic, p) for p in range(PATIENT_PARTITIONS)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA_BOOTSTRAP, **client_options(), enable_auto_commit=False
    )
    producer = create_producer(KAFKA_BOOTSTRAP, "it-ticker")
    await consumer.start()
    await producer.start()
    try:
        before = await consumer.end_offsets(tps)
        now = dt.datetime(2031, 1, 1, 12, tzinfo=dt.UTC)
        await publish_tick(producer, now, topic)
        consumer.assign(tps)
        seen = {}
        for tp in tps:
            consumer.seek(tp, before[tp])
        while len(seen) < len(tps):
            batch = await consumer.getmany(timeout_ms=2000)
            assert batch, "a partition got no tick"
            for tp, records in batch.items():
                for r in records:
                    event = parse_event(r.value)
                    if isinstance(event, ClockAdvanced) and event.payload.now == now:
                        seen[tp.partition] = event.event_id
        assert sorted(seen) == list(range(PATIENT_PARTITIONS))
        assert len(set(seen.values())) == 1  # one tick, written to each partition
    finally:
        await producer.stop()
        await consumer.stop()
