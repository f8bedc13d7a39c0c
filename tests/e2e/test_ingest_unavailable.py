"""503 with nothing recorded when Kafka or PostgreSQL fails mid-request.

The ingest app runs in-process against the stack's real PostgreSQL (a scratch database,
so nothing races the running services) with a producer that fails or records what it was
given; the unit tests cover both dependencies unreachable at start-up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.errors import KafkaTimeoutError
from twilio.request_validator import RequestValidator

from ingest.app import Resources, create_app
from ingest.settings import IngestSettings
from shared.db import create_pool, migrate

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://recovery:recovery@127.0.0.1:55432/recovery"
)
TOKEN = "e2e-unavailable-token-000000"
TWILIO_TOKEN = "e2e-unavailable-twilio"
PUBLIC = "https://ingest.example"


@dataclass
class FakeProducer:
    """Stands in for the Kafka producer: fails while ``down``, else records each send."""

    down: bool = True
    sent: list[tuple[str, bytes]] = field(default_factory=list)

    async def send_and_wait(self, topic: str, value: bytes, **_: Any) -> None:
        await asyncio.sleep(0)
        if self.down:
            raise KafkaTimeoutError("broker unreachable")
        self.sent.append((topic, value))

    async def stop(self) -> None:
        return None

    @property
    def client(self) -> FakeProducer:
        return self

    async def fetch_all_metadata(self) -> None:
        if self.down:
            raise KafkaTimeoutError("broker unreachable")


@pytest.fixture
async def scratch_url() -> AsyncIterator[str]:
    name = "it_ingest_" + secrets.token_hex(5)
    admin = await asyncpg.connect(DATABASE_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield DATABASE_URL.rpartition("/")[0] + "/" + name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@dataclass
class Harness:
    client: httpx.AsyncClient
    producer: FakeProducer
    pool: asyncpg.Pool

    async def count(self, sql: str, *args: Any) -> int:
        value = await self.pool.fetchval(sql, *args)
        return int(value)


@pytest.fixture
async def harness(scratch_url: str) -> AsyncIterator[Harness]:
    producer = FakeProducer()
    pools: list[asyncpg.Pool] = []

    async def connect(_: IngestSettings) -> Resources:
        pool = await create_pool(scratch_url)
        await migrate(pool, "ingest", "ingest")
        pools.append(pool)
        return Resources(pool, producer)  # type: ignore[arg-type]

    settings = IngestSettings(
        API_TOKEN=TOKEN,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        PUBLIC_BASE_URL=PUBLIC,
        SIMULATED_CLOCK=False,  # its own wall clock, whatever mode the stack runs in
    )
    app = create_app(settings, connect=connect)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://ingest",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):
        for _ in range(100):
            if pools:
                break
            await asyncio.sleep(0.05)
        assert pools, "the app did not connect"
        yield Harness(client, producer, pools[0])


def enrollment() -> dict[str, Any]:
    return {
        "patient_id": "p-unavailable",
        "phone": "+15551239999",
        "timezone": "America/Chicago",
        "language": "en",
        "surgery_date": dt.date.today().isoformat(),
        "baseline_severity": 3,
        "care_team": {"on_call": "+15550009999"},
        "sms_consent": True,
    }


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"


async def test_kafka_down_enrollment_is_503_and_nothing_is_registered(h: Harness) -> None:
    key = {"Idempotency-Key": "enroll-once"}
    r = await h.client.post("/v1/patients", json=enrollment(), headers=key)
    assert_unavailable(r)
    assert h.producer.sent == []
    assert await h.count("SELECT count(*) FROM ingest.patients") == 0
    assert await h.count("SELECT count(*) FROM ingest.care_team_phones") == 0
    assert await h.count("SELECT count(*) FROM ingest.idempotency_keys") == 0

    h.producer.down = False  # the broker is back: the client's retry goes through, once
    first = await h.client.post("/v1/patients", json=enrollment(), headers=key)
    again = await h.client.post("/v1/patients", json=enrollment(), headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert len(h.producer.sent) == 1
    assert await h.count("SELECT count(*) FROM ingest.patients") == 1


async def test_kafka_down_report_is_503(h: Harness) -> None:
    h.producer.down = False
    assert (await h.client.post("/v1/patients", json=enrollment())).status_code == 202
    h.producer.down = True
    body = {
        "patient_id": "p-unavailable",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "severity": 2,
        "event_id": "6d1c8b8e-2b7a-4a53-9d1c-5b8e2b7a4a53",
    }
    assert_unavailable(await h.client.post("/v1/symptom-reports", json=body))
    assert await h.count("SELECT count(*) FROM ingest.idempotency_keys") == 0
    h.producer.down = False
    assert (await h.client.post("/v1/symptom-reports", json=body)).status_code == 202


async def test_kafka_down_inbound_text_is_503_and_twilios_retry_is_processed(h: Harness) -> None:
    h.producer.down = False
    assert (await h.client.post("/v1/patients", json=enrollment())).status_code == 202
    sent_before = len(h.producer.sent)
    h.producer.down = True
    form = {"MessageSid": "SM" + "e" * 32, "From": "+15551239999", "Body": "STOP"}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(
        PUBLIC + "/v1/twilio/inbound", form
    )
    headers = {"X-Twilio-Signature": signature}
    assert_unavailable(await h.client.post("/v1/twilio/inbound", data=form, headers=headers))
    assert await h.count("SELECT count(*) FROM ingest.idempotency_keys") == 0
    consent = await h.pool.fetchval("SELECT sms_consent FROM ingest.patients")
    assert consent is True  # the STOP was not recorded either
    h.producer.down = False
    retry = await h.client.post("/v1/twilio/inbound", data=form, headers=headers)
    assert retry.status_code == 200
    assert len(h.producer.sent) == sent_before + 1
    assert await h.pool.fetchval("SELECT sms_consent FROM ingest.patients") is False


async def test_database_down_is_503_and_nothing_is_published(h: Harness) -> None:
    h.producer.down = False
    await h.pool.close()  # every acquire now fails, as with PostgreSQL gone
    requests: list[Callable[[], Any]] = [
        lambda: h.client.post("/v1/patients", json=enrollment()),
        lambda: h.client.post(
            "/v1/symptom-reports",
            json={
                "patient_id": "p-unavailable",
                "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
                "severity": 1,
            },
        ),
    ]
    for request in requests:
        assert_unavailable(await request())
    assert h.producer.sent == []
    ready = await h.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"] is False


@pytest.fixture
def h(harness: Harness) -> Harness:
    return harness
