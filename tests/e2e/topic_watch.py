"""Watching the stack's topics for what a request published (no tests here)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.crypto import SEALED_FIELDS, RemoteKeyring, is_sealed, open_value, static_token
from shared.kafka_security import client_options, default_bootstrap
from shared.topics import TOPICS

KAFKA_BOOTSTRAP = default_bootstrap()
PATIENT_EVENTS = "patient-events.v1"
PROVIDER_EVENTS = "provider-events.v1"


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
            **client_options(),
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
        from tests.e2e.conftest import _token  # conftest imports this module

        public = f"http://127.0.0.1:{os.environ.get('INGEST_PORT', 8080)}"
        base = os.environ.get("KEY_SERVICE_URL", os.environ.get("PUBLIC_BASE_URL", public))
        _KEYRING.append(RemoteKeyring(base, static_token(_token())))
    key = await _KEYRING[0].key(patient_id)
    assert key is not None, "a sealed event of a patient without a key"
    for f in fields:
        payload[f] = open_value(key, patient_id, f"{kind}.{f}", payload[f])
    return doc
