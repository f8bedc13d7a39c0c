"""Patients' data keys, wrapped by the master key, in ingest's schema (the only copy).

Ingest enrolls, so it creates each patient's key (:func:`ensure`, committed before the
enrollment is published, so a consumer that reads the enrollment always finds the key);
the other services fetch keys through ``GET /internal/v1/keys/{patient_id}``.
``python -m ingest.keys rotate`` re-wraps every key under a new master key.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import asyncpg

from shared.crypto import new_data_key, parse_master_key, unwrap_key, wrap_key


class LocalKeyring:
    """The keyring of the service that holds the keys: reads (and unwraps) from PostgreSQL,
    keeps unwrapped keys in memory until the patient is erased."""

    def __init__(self, pool: asyncpg.Pool, master: bytes) -> None:
        self.pool = pool
        self.master = master
        self._keys: dict[str, bytes] = {}

    def cached(self, patient_id: str) -> bytes | None:
        return self._keys.get(patient_id)

    def forget(self, patient_id: str) -> None:
        self._keys.pop(patient_id, None)

    async def ensure(self, patient_id: str) -> bytes:
        """The patient's key, created (and committed) if there is none yet."""
        found = await self.key(patient_id, create=False)
        if found is not None:
            return found
        await self.pool.execute(
            "INSERT INTO ingest.patient_keys (patient_id, wrapped) VALUES ($1, $2)"
            " ON CONFLICT (patient_id) DO NOTHING",
            patient_id,
            wrap_key(self.master, patient_id, new_data_key()),
        )
        key = await self.key(patient_id, create=False)
        assert key is not None
        return key

    async def key(self, patient_id: str, *, create: bool = True) -> bytes | None:
        """The key; for an enrolled patient without one yet (enrolled before encryption
        existed) one is created. ``None``: no such patient (never, or erased)."""
        found = self._keys.get(patient_id)
        if found is not None:
            return found
        wrapped = await self.pool.fetchval(
            "SELECT wrapped FROM ingest.patient_keys WHERE patient_id = $1", patient_id
        )
        if wrapped is None and create:
            wrapped = await self.pool.fetchval(
                "INSERT INTO ingest.patient_keys (patient_id, wrapped)"
                " SELECT $1, $2 WHERE EXISTS"
                " (SELECT 1 FROM ingest.patients WHERE patient_id = $1)"
                " ON CONFLICT (patient_id) DO UPDATE SET wrapped = ingest.patient_keys.wrapped"
                " RETURNING wrapped",
                patient_id,
                wrap_key(self.master, patient_id, new_data_key()),
            )
        if wrapped is None:
            return None
        key = unwrap_key(self.master, patient_id, bytes(wrapped))
        self._keys[patient_id] = key
        return key

    async def prefetch(self, patient_ids: set[str]) -> None:
        await self.keys(sorted(patient_ids))

    async def keys(self, patient_ids: list[str]) -> dict[str, bytes]:
        """The keys of those patients that have one (enrolled patients without one yet get
        one, as in ``key``), in one round trip for the lot."""
        out = {p: k for p in patient_ids if (k := self._keys.get(p)) is not None}
        wanted = [p for p in patient_ids if p not in out]
        if not wanted:
            return out
        rows = await self.pool.fetch(
            "SELECT patient_id, wrapped FROM ingest.patient_keys WHERE patient_id = ANY($1)",
            wanted,
        )
        found = {r["patient_id"]: bytes(r["wrapped"]) for r in rows}
        for patient_id in wanted:
            if patient_id not in found:
                key = await self.key(patient_id)  # creates one for an enrolled patient
                if key is not None:
                    out[patient_id] = key
                continue
            key = unwrap_key(self.master, patient_id, found[patient_id])
            self._keys[patient_id] = key
            out[patient_id] = key
        return out


async def ensure_many(pool: asyncpg.Pool, master: bytes, patient_ids: list[str]) -> None:
    """Create keys for patients enrolled by other means than ingest's API (benchmarks that
    write a cohort straight to Kafka)."""
    await pool.executemany(
        "INSERT INTO ingest.patient_keys (patient_id, wrapped) VALUES ($1, $2)"
        " ON CONFLICT (patient_id) DO NOTHING",
        [(p, wrap_key(master, p, new_data_key())) for p in patient_ids],
    )


async def destroy(conn: asyncpg.Connection, patient_id: str) -> int:
    """Delete the patient's key (in the caller's transaction): crypto-shredding."""
    deleted = await conn.fetch(
        "DELETE FROM ingest.patient_keys WHERE patient_id = $1 RETURNING 1", patient_id
    )
    return len(deleted)


async def rotate(url: str, old: bytes, new: bytes) -> int:
    """Re-wrap every data key from ``old`` to ``new`` master key, in one transaction (all
    or nothing); the data keys themselves, and so every event, stay as they are."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            rows = await conn.fetch(
                "SELECT patient_id, wrapped FROM ingest.patient_keys FOR UPDATE"
            )
            await conn.executemany(
                "UPDATE ingest.patient_keys SET wrapped = $2 WHERE patient_id = $1",
                [
                    (
                        r["patient_id"],
                        wrap_key(
                            new,
                            r["patient_id"],
                            unwrap_key(old, r["patient_id"], bytes(r["wrapped"])),
                        ),
                    )
                    for r in rows
                ],
            )
    finally:
        await conn.close()
    return len(rows)


def main(argv: list[str] | None = None) -> None:
    """``python -m ingest.keys rotate``: OLD_MASTER_KEY → MASTER_KEY (both base64, from the
    environment; DATABASE_URL as for ingest). Restart ingest with the new MASTER_KEY after."""
    parser = argparse.ArgumentParser(prog="python -m ingest.keys")
    parser.add_argument("command", choices=["rotate"])
    parser.parse_args(argv)
    from ingest.settings import IngestSettings

    settings = IngestSettings()
    old_text = os.environ.get("OLD_MASTER_KEY")
    if not old_text:
        sys.exit("OLD_MASTER_KEY (the master key in use) is required")
    old = parse_master_key(old_text)
    new = parse_master_key(settings.master_key.get_secret_value())
    if old == new:
        sys.exit("MASTER_KEY is the same as OLD_MASTER_KEY: nothing to rotate")
    count = asyncio.run(rotate(settings.database_url.get_secret_value(), old, new))
    sys.stdout.write(f"re-wrapped {count} data keys under the new master key\n")


if __name__ == "__main__":
    main()
