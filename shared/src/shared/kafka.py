"""Kafka helpers: the one way every service produces events."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from shared.events import Envelope, encode_event


def create_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    """An idempotent producer that waits for every in-sync replica (``acks=all``)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=10000,
        linger_ms=0,
    )


async def publish(
    producer: AIOKafkaProducer, topic: str, event: Envelope, partition: int | None = None
) -> None:
    """Send one event keyed by its patient and return only once the broker acknowledged it."""
    key = event.patient_id.encode() if event.patient_id else None
    await producer.send_and_wait(topic, value=encode_event(event), key=key, partition=partition)
