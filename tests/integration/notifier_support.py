"""Helpers for the notifier's integration tests (no tests here): fakes for the SMS port and
the clocks, decisions, an in-process SMS sandbox on a free port, topic readers."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from notifier.policy import Policy
from notifier.service import Notifier
from notifier.sms import ProviderMessage, SendError, SendResult, SmsSender, TwilioSmsSender
from shared.events import MessageStatusReported, SendNotification, encode_event, parse_event
from shared.kafka_security import client_options
from shared.topics import DECISIONS, TopicSpec, ensure_topics
from tests.decisions import decision as make_decision
from tests.integration.stack_env import KAFKA_BOOTSTRAP

NOW = dt.datetime(2026, 5, 1, 15, tzinfo=dt.UTC)
ACCOUNT_SID = "AC" + "5eed" * 8
AUTH_TOKEN = "integration-auth-token"
SERVICE_NUMBER = "+15005550006"


class ScriptedSender:
    """Fails with the scripted errors first, then succeeds; records every attempt and
    remembers what it 'sent' so ``recent`` can answer like a provider."""

    def __init__(self, *errors: SendError) -> None:
        self.errors = list(errors)
        self.attempts: list[tuple[str, str]] = []
        self.sent: list[ProviderMessage] = []
        self.lookup_error: SendError | None = None

    async def send(self, to: str, body: str) -> SendResult:
        self.attempts.append((to, body))
        if self.errors:
            raise self.errors.pop(0)
        sid = "SM" + secrets.token_hex(16)
        self.sent.append(ProviderMessage(sid, to, body, "queued", dt.datetime.now(dt.UTC)))
        return SendResult(provider_sid=sid, status="queued")

    async def recent(self, to: str, since: dt.datetime) -> list[ProviderMessage]:
        if self.lookup_error is not None:
            raise self.lookup_error
        return [m for m in reversed(self.sent) if m.to == to]


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


def decision(
    patient_id: str = "p-it",
    kind: str = "reassurance",
    *,
    audience: str = "patient",
    urgency: str = "routine",
    to: str = "+15551230001",
    backup_to: str | None = None,
    language: str = "es",
    due_at: dt.datetime = NOW,
    facts: dict[str, Any] | None = None,
    key: str | None = None,
) -> SendNotification:
    """A decision recorded at ``NOW``, in Spanish unless told otherwise."""
    return make_decision(
        patient_id,
        kind,
        at=NOW,
        key=key,
        audience=audience,
        urgency=urgency,
        to=to,
        backup_to=backup_to,
        language=language,
        due_at=due_at,
        facts=facts,
    )


def page(patient_id: str, **kwargs: Any) -> SendNotification:
    kwargs.setdefault("to", "+15550001111")
    kwargs.setdefault("backup_to", "+15550002222")
    kwargs.setdefault("language", "en")
    kwargs.setdefault(
        "facts", {"day": 40, "severity": 4, "baseline_severity": 3, "evidence": "day 40: 4"}
    )
    kwargs.setdefault("urgency", "urgent")
    return decision(patient_id, kwargs.pop("kind", "worsening"), audience="care_team", **kwargs)


def random_phone() -> str:
    return "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))


async def scratch_topic(prefix: str, partitions: int) -> str:
    """A new topic; retried while the broker's metadata has not caught up with its creation
    (``ensure_topics`` may describe it with 0 partitions right after creating it)."""
    topic = prefix + secrets.token_hex(4)
    for attempt in range(20):
        try:
            await ensure_topics(KAFKA_BOOTSTRAP, (TopicSpec(topic, partitions),))
            return topic
        except RuntimeError:
            if attempt == 19:
                raise
            await asyncio.sleep(0.25)
    raise AssertionError("unreachable")


FAST = Policy(
    lease=dt.timedelta(seconds=30),
    verify_delay=dt.timedelta(seconds=1),
    retry_base=0.05,
    retry_cap=0.2,
    reconcile_every=dt.timedelta(seconds=0),
)


def make_notifier(
    pool: asyncpg.Pool,
    sender: SmsSender,
    producer: Any,
    clock: Clock,
    *,
    wall: Clock | None = None,
    max_attempts: int = 3,
    policy: Policy = FAST,
    patient_topic: str | None = None,
) -> Notifier:
    n = Notifier(
        pool,
        sender,
        producer,
        clock,
        clinic="Test Clinic",
        max_attempts=max_attempts,
        interval=0.05,
        wall=wall or clock,
        policy=policy,
    )
    if patient_topic:
        n.patient_topic = patient_topic
    return n


async def statuses(pool: asyncpg.Pool) -> list[tuple[str, int]]:
    rows = await pool.fetch(
        "SELECT status, attempts FROM notifier.notifications ORDER BY created_at, escalation_step"
    )
    return [(r["status"], r["attempts"]) for r in rows]


async def read_topic(topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` from the beginning: (key, value)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA_BOOTSTRAP, **client_options(), enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes]] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in tps])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                out.extend((r.key, r.value) for r in records)
        return out
    finally:
        await consumer.stop()


async def read_events(topic: str) -> list[Any]:
    return [parse_event(v) for _, v in await read_topic(topic)]


@dataclass
class Record:
    """Just enough of a Kafka ``ConsumerRecord`` for the handlers."""

    value: bytes
    key: bytes | None = None
    topic: str = DECISIONS


def status_event(sid: str, status: str, error_code: int | None = None) -> Record:
    event = MessageStatusReported.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "occurred_at": NOW,
            "recorded_at": NOW,
            "patient_id": None,
            "source": "ingest",
            "payload": {"message_sid": sid, "status": status, "error_code": error_code},
        }
    )
    return Record(encode_event(event))


# --- an SMS sandbox of our own (the stack's is shared with other tests) --------------------


@dataclass
class SandboxServer:
    url: str
    http: httpx.AsyncClient

    def sender(self, *, timeout: float = 5.0, callback: str | None = None) -> TwilioSmsSender:
        return TwilioSmsSender(
            ACCOUNT_SID,
            AUTH_TOKEN,
            from_=SERVICE_NUMBER,
            messaging_service_sid=None,
            base_url=self.url,
            status_callback=callback,
            timeout=timeout,
        )

    async def fault(self, mode: str, count: int | None = None, delay_ms: int = 0) -> None:
        r = await self.http.post(
            "/sandbox/faults", json={"mode": mode, "count": count, "delay_ms": delay_ms}
        )
        r.raise_for_status()

    async def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        r = await self.http.get("/sandbox/messages", params={"to": to} if to else None)
        r.raise_for_status()
        return [m for m in r.json()["messages"] if m["direction"] == "outbound-api"]
