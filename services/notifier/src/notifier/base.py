"""What every part of the notifier shares: its collaborators and settings (``NotifierBase``),
decoding an event's patient fields, and the dead-letter topic."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from notifier import erasure
from notifier.counters import DEAD
from notifier.policy import EPOCH, Policy, utcnow
from notifier.sms import SmsSender
from notifier.voice import Caller
from shared.audit import AuditTrail
from shared.crypto import KEY_SERVICE_DOWN, EventCodec
from shared.events import Event, parse_event
from shared.supervisor import beat
from shared.topics import DEADLETTER, PATIENT_EVENTS

log = logging.getLogger(__name__)

Handler = Callable[[ConsumerRecord[Any, Any]], Awaitable[None]]


class NotifierBase:
    """The collaborators and settings of a notifier; the parts (intake, sending, paging)
    are mixins over it, composed in ``notifier.service.Notifier``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sender: SmsSender,
        producer: AIOKafkaProducer,
        clock: Callable[[], dt.datetime],
        *,
        clinic: str,
        max_attempts: int,
        interval: float,
        wall: Callable[[], dt.datetime] = utcnow,
        policy: Policy | None = None,
        audit: AuditTrail | None = None,
        caller: Caller | None = None,
        public_base_url: str = "",
        codec: EventCodec | None = None,
        eraser: erasure.MessageEraser | None = None,
        hash_key: bytes = b"",
    ) -> None:
        self.pool = pool
        #: Opens the patient fields of events (None: plain events only, as in some tests).
        self.codec = codec
        self.eraser = eraser
        #: Keys the hashed phones left on the suppression list by an erasure.
        self.hash_key = hash_key
        self.audit = audit
        self.sender = sender
        #: The voice channel for pages (None: texts only).
        self.caller = caller
        self.public_base_url = public_base_url
        self.producer = producer
        self.clock = clock
        self.wall = wall
        self.clinic = clinic
        self.max_attempts = max_attempts
        self.interval = interval
        self.policy = policy or Policy()
        self.wake = asyncio.Event()
        self._last_reconcile = EPOCH
        self.patient_topic = PATIENT_EVENTS

    async def _dead_letter(self, rec: ConsumerRecord[Any, Any], topic: str, reason: str) -> None:
        DEAD.labels("invalid").inc()
        await self.producer.send_and_wait(
            DEADLETTER,
            value=rec.value,
            key=rec.key,
            headers=[("reason", reason[:500].encode()), ("topic", topic.encode())],
        )

    def _event_time(self) -> dt.datetime:
        now = self.clock()
        return now if now > EPOCH else self.wall()

    async def _decode(self, raw: bytes) -> Event:
        """The event with its patient fields opened; waits while the key service is down
        (never skips). ``KeyUnavailable``: the patient was erased."""
        if self.codec is None:
            return parse_event(raw)
        delay = 0.2
        while True:
            try:
                return await self.codec.decode(raw)
            except KEY_SERVICE_DOWN as exc:
                log.warning("data keys unavailable, retrying: %s", type(exc).__name__)
                beat()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @staticmethod
    def _page_facts(
        facts: dict[str, Any], patient_id: str | None, rule: str | None
    ) -> dict[str, Any]:
        out = dict(facts)
        if out.get("patient_id") is None and patient_id:
            out["patient_id"] = patient_id
        if out.get("rule") is None and rule:
            out["rule"] = rule
        return out

    def _is_page(self, row: asyncpg.Record) -> bool:
        return bool(row["audience"] == "care_team" and row["urgency"] == "urgent")
