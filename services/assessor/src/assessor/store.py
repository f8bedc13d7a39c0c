"""The assessor's PostgreSQL pool (read model and audit schemas), opened on first use."""

from __future__ import annotations

import asyncio

import asyncpg

from shared.db import create_pool, migrate


class Store:
    """The PostgreSQL pool, opened once the worker starts (never at import)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        async with self._lock:
            if self.pool is None:
                pool = await create_pool(self.url)
                await migrate(pool, "assessor", "assessor")
                await migrate(pool, "audit", "shared.audit")
                self.pool = pool
            return self.pool
