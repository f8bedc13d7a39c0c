"""PostgreSQL helpers: pools and ordered SQL migrations with a version table per schema."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, timeout=10)
    assert pool is not None
    return pool


async def answers(pool: asyncpg.Pool | None, within_s: float = 2) -> bool:
    """Whether PostgreSQL answers a query within ``within_s`` seconds (a readiness check:
    any failure is a no, never an error)."""
    if not isinstance(pool, asyncpg.Pool):
        return False
    with contextlib.suppress(Exception):
        await asyncio.wait_for(pool.fetchval("SELECT 1"), within_s)
        return True
    return False


async def migrate(pool: asyncpg.Pool, schema: str, package: str) -> list[str]:
    """Apply ``<package>/migrations/NNN_name.sql`` files not yet applied to ``schema``.

    Each file runs in its own transaction with its version row; an advisory lock keeps
    replicas that start together from applying the same file twice.
    """
    files = sorted(
        (
            f
            for f in resources.files(package).joinpath("migrations").iterdir()
            if f.name.endswith(".sql")
        ),
        key=lambda f: f.name,
    )
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ValueError(f"not a schema name: {schema!r}")
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", schema)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                r["version"]
                for r in await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')  # noqa: S608
            }
            for f in files:
                version = f.name.removesuffix(".sql")
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(f'SET LOCAL search_path TO "{schema}"')
                    await conn.execute(f.read_text())
                    await conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations (version) VALUES ($1)',  # noqa: S608
                        version,
                    )
                applied.append(version)
                log.info("migration applied", extra={"schema": schema, "version": version})
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", schema)
    return applied
