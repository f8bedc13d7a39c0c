"""Integration fixtures: the real PostgreSQL and Kafka of the local stack (``make up``).

Each test gets a scratch database, so nothing here races the running services.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.db import create_pool
from shared.kafka_security import TOOLS_PRINCIPAL, default_bootstrap

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://recovery:recovery@127.0.0.1:55432/recovery"
)
KAFKA_BOOTSTRAP = default_bootstrap()
# Service code run in-process here works on scratch topics and groups, which only the
# tools principal may use (the services' own principals are held to their ACLs).
os.environ.setdefault("KAFKA_SASL_USERNAME", TOOLS_PRINCIPAL)


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
