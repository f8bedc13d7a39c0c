"""End-to-end fixtures: the running local stack (``make up``), reached over HTTP only."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.kafka import create_producer
from shared.kafka_security import default_bootstrap
from tests.e2e.topic_watch import PATIENT_EVENTS, PROVIDER_EVENTS, TopicWatch

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Stack:
    ingest: httpx.AsyncClient
    assessor: httpx.AsyncClient
    notifier: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    token: str


def _token() -> str:
    if os.environ.get("API_TOKEN"):
        return os.environ["API_TOKEN"]
    path = ROOT / ".run" / "api-token"
    if not path.exists():
        pytest.fail("the stack is not running: start it with `make up`")
    return path.read_text().strip()


def _url(var: str, default: int) -> str:
    return f"http://127.0.0.1:{os.environ.get(var, default)}"


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    token = _token()
    headers = {"Authorization": f"Bearer {token}"}
    clients = [
        httpx.AsyncClient(base_url=_url(var, port), headers=headers, timeout=10)
        for var, port in (
            ("INGEST_PORT", 8080),
            ("ASSESSOR_PORT", 8081),
            ("NOTIFIER_PORT", 8082),
            ("SANDBOX_PORT", 8090),
        )
    ]
    yield Stack(*clients, token=token)
    for c in clients:
        await c.aclose()


@pytest.fixture(scope="module")
async def topics() -> AsyncIterator[TopicWatch]:
    async with TopicWatch(PATIENT_EVENTS, PROVIDER_EVENTS) as w:
        yield w


@pytest.fixture
async def watch(topics: TopicWatch) -> TopicWatch:
    await topics.mark()
    return topics


@pytest.fixture
async def decisions() -> AsyncIterator[Any]:
    """A producer onto the stack's ``decisions.v1``, as the assessor writes it."""
    producer = create_producer(default_bootstrap(), "e2e")
    await producer.start()
    yield producer
    await producer.stop()


def random_phone() -> str:
    return "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))


def random_patient_id() -> str:
    return "e2e-" + secrets.token_hex(6)


async def stack_now(stack: Stack) -> dt.datetime:
    """ "Now" for a test: the wall clock, or on a simulated clock a moment after both the
    clock and the wall time (the clock only moves forward; scenarios may have run ahead)."""
    r = await stack.ingest.get("/v1/clock")
    assert r.status_code == 200, r.text
    body = r.json()
    wall = dt.datetime.now(dt.UTC)
    if not body["simulated"]:
        return wall
    current = dt.datetime.fromisoformat(body["now"]) if body["now"] else wall
    now = max(current, wall) + dt.timedelta(seconds=1)
    moved = await stack.ingest.post("/v1/clock", json={"now": now.isoformat()})
    assert moved.status_code == 202, moved.text
    return now


ZONES = (
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Bangkok",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)


def daytime_zone(now: dt.datetime) -> str:
    """A time zone where ``now`` is mid-day, so no quiet-hour deferral applies."""
    from zoneinfo import ZoneInfo

    return next(z for z in ZONES if 11 <= now.astimezone(ZoneInfo(z)).hour < 17)
