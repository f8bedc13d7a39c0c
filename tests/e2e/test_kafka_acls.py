"""The broker of the running stack is locked: each service's principal reaches exactly its
ACLs, a wrong password or a plaintext client gets nothing, and faust's own web views are off.
"""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from pydantic import SecretStr

from shared.kafka_security import KafkaSecurity, client_options, default_bootstrap
from shared.topics import CARE_TEAM_EVENTS, DECISIONS, PATIENT_EVENTS

KAFKA_BOOTSTRAP = default_bootstrap()
ASSESSOR = f"http://127.0.0.1:{os.environ.get('ASSESSOR_PORT', '8081')}"


def as_(principal: str) -> KafkaSecurity:
    """The principal's own login (whatever KAFKA_SASL_USERNAME this test process has)."""
    return KafkaSecurity(KAFKA_SASL_USERNAME=principal)


async def produce(principal: str, topic: str, security: KafkaSecurity | None = None) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA_BOOTSTRAP,
        request_timeout_ms=10000,
        **client_options(principal, security or as_(principal)),
    )
    try:
        await producer.start()
        await producer.send_and_wait(topic, b"{}", key=b"acl-probe", partition=0)
    finally:
        await producer.stop()


async def read_one_batch(principal: str, topic: str) -> None:
    """Fetch from partition 0 as ``principal`` (no group): raises if the broker refuses.

    Without even DESCRIBE on the topic the broker leaves it out of the principal's topic
    list (a fetch would only be retried and logged by aiokafka): that is raised here. With
    DESCRIBE but no READ, the fetch itself raises."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA_BOOTSTRAP,
        enable_auto_commit=False,
        request_timeout_ms=10000,
        **client_options(principal, as_(principal)),
    )
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise TopicAuthorizationFailedError(topic)
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        await consumer.getmany(tp, timeout_ms=3000)
        await consumer.position(tp)
    finally:
        await consumer.stop()


async def test_the_notifier_cannot_inject_a_decision() -> None:
    """A decision's text goes out as an SMS: only the assessor may write them."""
    with pytest.raises(TopicAuthorizationFailedError):
        await produce("notifier", DECISIONS)


async def test_the_console_cannot_write_the_patient_stream() -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await produce("console", PATIENT_EVENTS)


async def test_ingest_cannot_read_the_patient_stream() -> None:
    """Ingest writes patients' reports; it has no business reading anyone's back."""
    with pytest.raises(TopicAuthorizationFailedError):
        await asyncio.wait_for(read_one_batch("ingest", PATIENT_EVENTS), 30)


async def test_the_notifier_cannot_read_the_care_team_events() -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await asyncio.wait_for(read_one_batch("notifier", CARE_TEAM_EVENTS), 30)


async def test_a_principal_reads_what_its_acls_allow() -> None:
    """The control: the same probe succeeds where the ACL allows it."""
    await asyncio.wait_for(read_one_batch("notifier", DECISIONS), 30)
    await asyncio.wait_for(read_one_batch("console", CARE_TEAM_EVENTS), 30)


async def test_a_wrong_password_is_refused() -> None:
    wrong = KafkaSecurity(
        KAFKA_SASL_USERNAME="notifier", KAFKA_SASL_PASSWORD=SecretStr("not-the-password")
    )
    with pytest.raises(KafkaError):
        await asyncio.wait_for(produce("notifier", PATIENT_EVENTS, wrong), 30)


async def test_a_plaintext_client_is_refused() -> None:
    plain = KafkaSecurity(KAFKA_SECURITY_PROTOCOL="PLAINTEXT", KAFKA_SASL_USERNAME="admin")
    with pytest.raises(KafkaError):
        await asyncio.wait_for(produce("admin", PATIENT_EVENTS, plain), 30)


@pytest.mark.parametrize(
    "path", ["/router", "/table", "/table/patient-state", "/graph", "/stats", "/"]
)
async def test_fausts_web_views_are_off(path: str) -> None:
    async with httpx.AsyncClient(base_url=ASSESSOR, timeout=10) as client:
        assert (await client.get(path)).status_code == 404
        # The assessor's own endpoints are still served.
        assert (await client.get("/healthz")).status_code == 200
