"""Kafka helpers: the one way every service produces events."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaProducer

from shared.crypto import EventCodec
from shared.events import Envelope, encode_event
from shared.kafka_security import client_options
from shared.metrics import EVENTS_PRODUCED, PRODUCE_LATENCY


def create_producer(
    bootstrap: str, client_id: str, *, principal: str | None = None
) -> AIOKafkaProducer:
    """An idempotent producer that waits for every in-sync replica (``acks=all``).

    It logs in as ``principal`` (``shared.kafka_security``: a service names itself; tools
    and tests default to the tools principal)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        **client_options(principal),
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=10000,
        linger_ms=0,
    )


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    event: Envelope,
    *,
    partition: int | None = None,
    key: str | None = None,
    codec: EventCodec | None = None,
) -> None:
    """Send one event and return only once the broker acknowledged it (``acks=all``).

    The key is the event's patient unless given (e.g. a message SID for provider events).
    The services publish every event that carries patient data through their ``codec``
    (it seals those fields with the patient's key); without one the event goes out as is
    (PHI-free events, and tests that publish fixtures of their own).
    """
    raw_key = key or event.patient_id
    kind = str(getattr(event, "type", "unknown"))  # every concrete event has a type
    value = await codec.encode(event) if codec is not None else encode_event(event)
    start = time.perf_counter()
    try:
        await producer.send_and_wait(
            topic,
            value=value,
            key=raw_key.encode() if raw_key else None,
            partition=partition,
        )
    except BaseException:
        EVENTS_PRODUCED.labels(topic, kind, "error").inc()
        raise
    PRODUCE_LATENCY.labels(topic).observe(time.perf_counter() - start)
    EVENTS_PRODUCED.labels(topic, kind, "ok").inc()
