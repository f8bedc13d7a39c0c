"""Integration fixtures: the real PostgreSQL and Kafka of the local stack (``make up``).

Each test gets a scratch database, so nothing here races the running services.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from shared.db import create_pool, migrate
from shared.kafka import create_producer
from sms_sandbox.app import create_app as create_sandbox
from sms_sandbox.settings import SandboxSettings
from tests.integration.notifier_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SERVICE_NUMBER,
    SandboxServer,
    scratch_topic,
)
from tests.integration.stack_env import DATABASE_URL, KAFKA_BOOTSTRAP
from tests.servers import ServerThread


@pytest.fixture
async def scratch_db_url() -> AsyncIterator[str]:
    name = "it_" + secrets.token_hex(6)
    admin = await asyncpg.connect(DATABASE_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = DATABASE_URL.rpartition("/")
        yield f"{base}/{name}"
    finally:
        for attempt in range(10):
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except asyncpg.InsufficientPrivilegeError:
                # FORCE cannot end a superuser's backend (autovacuum working on the scratch
                # database); it finishes within moments.
                if attempt == 9:
                    raise
                await asyncio.sleep(0.5)
        await admin.close()


@pytest.fixture
async def pool(scratch_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(scratch_db_url)
    yield p
    await p.close()


# --- the notifier's: its ledger schema, a producer, scratch topics, an SMS sandbox ----------


@pytest.fixture
async def ledger_pool(pool: asyncpg.Pool) -> asyncpg.Pool:
    assert await migrate(pool, "notifier", "notifier") == [
        "001_ledger",
        "002_delivery",
        "003_pages_until_answered",
        "004_voice",
        "005_team",
        "006_erasure",
    ]
    assert await migrate(pool, "notifier", "notifier") == []  # a second run applies nothing
    return pool


@pytest.fixture
async def producer():  # type: ignore[no-untyped-def]
    p = create_producer(KAFKA_BOOTSTRAP, "it-notifier")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def patient_topic() -> str:
    """A scratch stand-in for ``patient-events.v1`` (the stack's own is left alone)."""
    return await scratch_topic("it-patient-events-", 1)


@pytest.fixture(scope="module")
def sandbox_thread() -> Iterator[str]:
    settings = SandboxSettings(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=SERVICE_NUMBER,
        status_callback_url=None,
        public_base_url="http://127.0.0.1:9",
        callback_delay_ms=20,
        callback_attempts=1,
        callback_timeout_s=0.5,
    )
    with ServerThread(create_sandbox(settings)) as server:
        yield server.url


@pytest.fixture
async def sandbox(sandbox_thread: str) -> AsyncIterator[SandboxServer]:
    async with httpx.AsyncClient(base_url=sandbox_thread, timeout=10) as http:
        await http.delete("/sandbox/messages")
        await http.post("/sandbox/faults", json={"mode": "none"})
        yield SandboxServer(sandbox_thread, http)
        await http.post("/sandbox/faults", json={"mode": "none"})
