"""The sandbox's in-memory message store and fault state (one process, one event loop)."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Literal

FaultMode = Literal["none", "429", "500", "slow", "drop"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class StoredMessage:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    status: str
    #: ``outbound-api`` (sent through the API), ``outbound-reply`` (TwiML reply) or ``inbound``.
    direction: str
    num_segments: int
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    date_created: dt.datetime = field(default_factory=utcnow)
    date_updated: dt.datetime = field(default_factory=utcnow)
    date_sent: dt.datetime | None = None

    @property
    def phone(self) -> str:
        """The patient-side number of the conversation this message belongs to."""
        return self.from_ if self.direction == "inbound" else self.to


class MessageStore:
    """Messages in arrival order, indexed by sid; every access goes through one lock."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._messages: dict[str, StoredMessage] = {}

    async def add(self, message: StoredMessage) -> None:
        async with self._lock:
            self._messages[message.sid] = message

    async def get(self, sid: str) -> StoredMessage | None:
        async with self._lock:
            return self._messages.get(sid)

    async def set_status(self, sid: str, status: str) -> StoredMessage | None:
        async with self._lock:
            current = self._messages.get(sid)
            if current is None:
                return None
            now = utcnow()
            updated = replace(
                current,
                status=status,
                date_updated=now,
                date_sent=current.date_sent or (now if status in {"sent", "delivered"} else None),
            )
            self._messages[sid] = updated
            return updated

    async def list(self, to: str | None = None, from_: str | None = None) -> list[StoredMessage]:
        async with self._lock:
            found = list(self._messages.values())
        if to is not None:
            found = [m for m in found if m.to == to]
        if from_ is not None:
            found = [m for m in found if m.from_ == from_]
        return found

    async def delete(self, sid: str) -> bool:
        """Remove one message (Twilio's message DELETE); False if there was none."""
        async with self._lock:
            return self._messages.pop(sid, None) is not None

    async def clear(self) -> int:
        async with self._lock:
            count = len(self._messages)
            self._messages.clear()
            return count


@dataclass(frozen=True)
class FaultState:
    mode: FaultMode = "none"
    #: How many more Messages.json POSTs the fault applies to; ``None`` means until reset.
    remaining: int | None = None
    delay_ms: int = 0

    def as_json(self) -> dict[str, object]:
        return {"mode": self.mode, "count": self.remaining, "delay_ms": self.delay_ms}


class Faults:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._state = FaultState()

    async def set(self, mode: FaultMode, count: int | None, delay_ms: int) -> FaultState:
        async with self._lock:
            if mode == "none" or count == 0:
                self._state = FaultState()
            else:
                self._state = FaultState(mode=mode, remaining=count, delay_ms=delay_ms)
            return self._state

    async def current(self) -> FaultState:
        async with self._lock:
            return self._state

    async def take(self) -> FaultState:
        """The fault to apply to this request (consuming one of its count)."""
        async with self._lock:
            state = self._state
            if state.mode == "none":
                return state
            if state.remaining is not None:
                left = state.remaining - 1
                self._state = FaultState() if left <= 0 else replace(state, remaining=left)
            return state
