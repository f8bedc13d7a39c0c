"""503 with nothing recorded when Kafka or PostgreSQL fails mid-request — except Twilio's
webhooks, which are stored in ingest's outbox and answered 200 while Kafka is down, then
published by the relay when it returns (503 only when PostgreSQL is down too).

The ingest app runs in-process against the stack's real PostgreSQL (a scratch database,
so nothing races the running services) with a producer that fails or records what it was
given; the unit tests cover both dependencies unreachable at start-up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
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

from ingest.app import create_app
from ingest.context import Resources
from ingest.keys import LocalKeyring
from ingest.settings import IngestSettings
from shared.crypto import EventCodec, parse_master_key
from shared.db import create_pool, migrate
from shared.settings import DEV_MASTER_KEY

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

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        """The relay's way: enqueue, then await the returned future for the ack."""
        await self.send_and_wait(topic, value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

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
        WEBHOOK_FLUSH_WAIT_S=0.2,  # answers wait less for a Kafka that is down
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


def signed(path: str, form: dict[str, str]) -> dict[str, str]:
    return {
        "X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + path, form)
    }


def text_form(n: int, body: str) -> dict[str, str]:
    return {"MessageSid": "SM" + f"{n:x}" * 32, "From": "+15551239999", "Body": body}


async def until_published(h: Harness, count: int) -> None:
    for _ in range(200):
        if len(h.producer.sent) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the relay published {len(h.producer.sent)} of {count}")


async def test_kafka_down_inbound_texts_are_accepted_and_published_in_order_when_it_returns(
    h: Harness,
) -> None:
    h.producer.down = False
    assert (await h.client.post("/v1/patients", json=enrollment())).status_code == 202
    sent_before = len(h.producer.sent)
    h.producer.down = True
    forms = [text_form(n, body) for n, body in ((0xA, "3"), (0xB, "my face is drooping"))]
    forms.append(text_form(0xC, "STOP"))
    for form in forms:
        r = await h.client.post(
            "/v1/twilio/inbound", data=form, headers=signed("/v1/twilio/inbound", form)
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/xml")
    assert await h.pool.fetchval("SELECT sms_consent FROM ingest.patients") is False
    assert await h.count("SELECT count(*) FROM ingest.outbox WHERE published_at IS NULL") == 3
    await asyncio.sleep(0.3)
    assert len(h.producer.sent) == sent_before  # nothing reached Kafka yet

    # Twilio repeats a webhook: the same answer, nothing stored twice.
    again = await h.client.post(
        "/v1/twilio/inbound", data=forms[0], headers=signed("/v1/twilio/inbound", forms[0])
    )
    assert again.status_code == 200
    assert await h.count("SELECT count(*) FROM ingest.outbox") == 3

    h.producer.down = False  # the broker returns: the relay publishes, in order, once
    await until_published(h, sent_before + 3)
    raw = [v for _, v in h.producer.sent[sent_before:]]
    assert not any(b"my face is drooping" in v for v in raw)  # sealed with the patient's key
    master = parse_master_key(os.environ.get("MASTER_KEY", DEV_MASTER_KEY))
    codec = EventCodec(LocalKeyring(h.pool, master))
    published = [(await codec.decode(v)).model_dump(mode="json") for v in raw]
    assert [e["type"] for e in published] == ["symptom.reported"] * 2 + ["consent.changed"]
    assert [e["payload"].get("note") for e in published[:2]] == [None, "my face is drooping"]
    await asyncio.sleep(0.3)
    assert len(h.producer.sent) == sent_before + 3
    assert await h.count("SELECT count(*) FROM ingest.outbox WHERE published_at IS NULL") == 0


async def test_kafka_down_status_callback_is_accepted_and_published_later(h: Harness) -> None:
    form = {"MessageSid": "SM" + "d" * 32, "MessageStatus": "delivered"}
    r = await h.client.post(
        "/v1/twilio/status", data=form, headers=signed("/v1/twilio/status", form)
    )
    assert r.status_code == 204, r.text
    h.producer.down = False
    await until_published(h, 1)
    assert json.loads(h.producer.sent[0][1])["type"] == "message.status_reported"


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
    form = text_form(0xF, "2")  # with PostgreSQL down too, Twilio hears 503 (Fallback URL)
    assert_unavailable(
        await h.client.post(
            "/v1/twilio/inbound", data=form, headers=signed("/v1/twilio/inbound", form)
        )
    )
    assert h.producer.sent == []
    ready = await h.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"] is False


@pytest.fixture
def h(harness: Harness) -> Harness:
    return harness
