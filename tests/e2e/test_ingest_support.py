"""Helpers for the ingest end-to-end tests (no tests here): watching topics for what a
request published, enrolling patients, and signing Twilio webhooks."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from twilio.request_validator import RequestValidator

from shared.crypto import SEALED_FIELDS, RemoteKeyring, is_sealed, open_value, static_token
from shared.topics import TOPICS
from tests.e2e.conftest import Stack, _token, random_patient_id, random_phone
from tools.client import eventually  # noqa: F401 - re-exported for the ingest tests

KAFKA_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PATIENT_EVENTS = "patient-events.v1"
PROVIDER_EVENTS = "provider-events.v1"
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "sandbox-auth-token")
PUBLIC_BASE_URL = os.environ.get(
    "PUBLIC_BASE_URL", f"http://127.0.0.1:{os.environ.get('INGEST_PORT', 8080)}"
).rstrip("/")
TZ = "America/Chicago"


@dataclass(frozen=True)
class Record:
    topic: str
    key: str | None
    value: dict[str, Any]
    raw: str


class TopicWatch:
    """Takes the topics' end offsets on entry; ``records()`` reads what arrived since.

    A bare consumer (no group, nothing committed), so it disturbs no service.
    """

    def __init__(self, *topics: str) -> None:
        self.topics = topics or (PATIENT_EVENTS, PROVIDER_EVENTS)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=KAFKA_BOOTSTRAP,
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=100,
        )
        self.start: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> TopicWatch:
        counts = {spec.name: spec.partitions for spec in TOPICS}
        partitions = [TopicPartition(t, p) for t in self.topics for p in range(counts[t])]
        await self.consumer.start()
        try:
            self.consumer.assign(partitions)
            self.consumer.pause(*partitions)  # fetch only while reading
            await self.mark()
        except BaseException:
            await self.consumer.stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def mark(self) -> None:
        """From now on: ``records()`` returns what arrives after this point."""
        self.start = await self.consumer.end_offsets(list(self.consumer.assignment()))

    async def records(self, *needles: str, settle: float = 0.05) -> list[Record]:
        """Records published since entry whose key is, or whose value contains, a needle."""
        await asyncio.sleep(settle)
        end = await self.consumer.end_offsets(list(self.start))
        pending = {tp for tp in self.start if end[tp] > self.start[tp]}
        for tp in pending:
            self.consumer.seek(tp, self.start[tp])
        self.consumer.resume(*pending)
        found: list[Record] = []
        deadline = time.monotonic() + 10
        try:
            while pending and time.monotonic() < deadline:
                batches = await self.consumer.getmany(*pending, timeout_ms=500)
                for tp, messages in batches.items():
                    for m in messages:
                        if m.offset >= end[tp]:
                            continue
                        key = m.key.decode() if m.key else None
                        raw = m.value.decode()
                        if not needles or key in needles or any(n in raw for n in needles):
                            found.append(Record(tp.topic, key, await opened(raw), raw))
                done = {tp for tp in pending if await self.consumer.position(tp) >= end[tp]}
                self.consumer.pause(*done)
                pending -= done
        finally:
            self.consumer.pause(*self.start)
        assert not pending, "could not read the topics to their end"
        return found


_KEYRING: list[RemoteKeyring] = []


async def opened(raw: str) -> dict[str, Any]:
    """The event as its consumers see it: patient fields (sealed on the wire with the
    patient's key) opened with the key from ingest's key endpoint."""
    doc: dict[str, Any] = json.loads(raw)
    payload, kind, patient_id = doc.get("payload"), doc.get("type"), doc.get("patient_id")
    fields = [
        f
        for f in SEALED_FIELDS.get(str(kind), ())
        if isinstance(payload, dict) and is_sealed(payload.get(f))
    ]
    if not fields or not isinstance(patient_id, str):
        return doc
    if not _KEYRING:
        base = os.environ.get("KEY_SERVICE_URL", PUBLIC_BASE_URL)
        _KEYRING.append(RemoteKeyring(base, static_token(_token())))
    key = await _KEYRING[0].key(patient_id)
    assert key is not None, "a sealed event of a patient without a key"
    for f in fields:
        payload[f] = open_value(key, patient_id, f"{kind}.{f}", payload[f])
    return doc


def enrollment_body(days_since_surgery: int = 5, **changes: Any) -> dict[str, Any]:
    today = clock_now().astimezone(ZoneInfo(TZ)).date()
    body: dict[str, Any] = {
        "patient_id": random_patient_id(),
        "phone": random_phone(),
        "timezone": TZ,
        "language": "en",
        "surgery_date": (today - dt.timedelta(days=days_since_surgery)).isoformat(),
        "baseline_severity": 3,
        "care_team": {"on_call": random_phone(), "backup": random_phone(), "timezone": TZ},
        "sms_consent": True,
    }
    body.update(changes)
    return body


async def enroll(stack: Stack, **changes: Any) -> dict[str, Any]:
    body = enrollment_body(**changes)
    r = await stack.ingest.post("/v1/patients", json=body)
    assert r.status_code == 202, r.text
    uuid.UUID(r.json()["event_id"])
    return body


def new_sid() -> str:
    return "SM" + uuid.uuid4().hex


def sign(path: str, form: dict[str, str], token: str = TWILIO_AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(PUBLIC_BASE_URL + path, form))


def inbound_form(from_phone: str, body: str, sid: str | None = None) -> dict[str, str]:
    sid = sid or new_sid()
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC00000000000000000000000000000000",
        "From": from_phone,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }


async def post_webhook(
    client: httpx.AsyncClient, path: str, form: dict[str, str], signature: str | None = "sign"
) -> httpx.Response:
    headers = {"Authorization": ""}  # webhooks carry no bearer token
    if signature == "sign":
        headers["X-Twilio-Signature"] = sign(path, form)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    return await client.post(path, data=form, headers=headers)


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return str(body["error"]["code"])


_NOW: list[dt.datetime] = []


def clock_now() -> dt.datetime:
    """ "Now" on the stack under test, read once per session: the wall clock, or on a
    simulated clock (``make test`` runs one; scenarios move it) the clock moved to just past
    both its own time and the wall time. Reports stamped with it are never in the future."""
    if _NOW:
        return _NOW[0]
    headers = {"Authorization": f"Bearer {_token()}"}
    base = f"http://127.0.0.1:{os.environ.get('INGEST_PORT', 8080)}"
    body = httpx.get(f"{base}/v1/clock", headers=headers, timeout=10).json()
    wall = dt.datetime.now(dt.UTC)
    now = wall
    if body["simulated"]:
        current = dt.datetime.fromisoformat(body["now"]) if body["now"] else wall
        now = max(current, wall) + dt.timedelta(seconds=1)
        moved = httpx.post(
            f"{base}/v1/clock", json={"now": now.isoformat()}, headers=headers, timeout=10
        )
        assert moved.status_code == 202, moved.text
    _NOW.append(now)
    return now


def stack_is_simulated() -> bool:
    headers = {"Authorization": f"Bearer {_token()}"}
    base = f"http://127.0.0.1:{os.environ.get('INGEST_PORT', 8080)}"
    return bool(httpx.get(f"{base}/v1/clock", headers=headers, timeout=10).json()["simulated"])
