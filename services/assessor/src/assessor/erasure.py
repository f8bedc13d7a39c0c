"""The assessor's part of crypto-shredding and erasure.

The state table's values (and so its changelog topic) hold each patient's whole state:
their phone, their notes. They are sealed with the patient's data key (``shared.crypto``);
the next due instant stays beside the ciphertext, so the timer index of a newly assigned
partition is built without a key per patient. Stored form::

    enc1:<next due, ISO 8601, or "-">|<base64 nonce‖ciphertext‖tag>

On ``patient.erased`` the table entry is deleted (faust writes a tombstone to the
changelog, which compaction then removes), the read model's row is deleted and the
compacted ``recovery-events.v1`` gets a tombstone for the patient's key.
"""

from __future__ import annotations

import base64
import datetime as dt

import asyncpg

from shared.crypto import open_bytes, seal_bytes

PREFIX = b"enc1:"
FIELD = "assessor.state"


def seal_state(key: bytes, patient_id: str, state_json: bytes, due: dt.datetime | None) -> bytes:
    sealed = base64.b64encode(seal_bytes(key, patient_id, FIELD, state_json))
    return PREFIX + (due.isoformat() if due is not None else "-").encode() + b"|" + sealed


def is_sealed(stored: bytes) -> bool:
    return stored.startswith(PREFIX)


def open_state(key: bytes, patient_id: str, stored: bytes) -> bytes:
    """The state's JSON (a value written before encryption existed is returned as is)."""
    if not is_sealed(stored):
        return stored
    _, _, sealed = stored[len(PREFIX) :].partition(b"|")
    return open_bytes(key, patient_id, FIELD, base64.b64decode(sealed))


def sealed_due(stored: bytes) -> tuple[bool, dt.datetime | None]:
    """(True, the next due instant) from a sealed value; (False, None) for a plain one."""
    if not is_sealed(stored):
        return False, None
    due, _, _ = stored[len(PREFIX) :].partition(b"|")
    return True, None if due == b"-" else dt.datetime.fromisoformat(due.decode())


async def delete_read_model(pool: asyncpg.Pool, patient_id: str) -> int:
    rows = await pool.fetch(
        "DELETE FROM assessor.recovery WHERE patient_id = $1 RETURNING 1", patient_id
    )
    return len(rows)
