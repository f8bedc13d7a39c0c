"""The notifier's part of an erasure: its ledger, and the provider's copies.

On ``patient.erased`` (read from the patient stream, in order after the patient's last
event) the notifier asks the SMS provider to delete every message of the patient's
conversation (the SIDs it sent, and whatever the provider lists to or from the patient's
phone: their replies), then deletes the patient's ledger rows (bodies and phones),
provider statuses, consent and team rows. A patient who had opted out leaves a keyed hash
of their phone on ``suppressed_phones``. Both parts are reported on
``erasure-events.v1`` (stores ``notifier`` and ``provider``). Everything here is
idempotent: a restart mid-way handles the event again and finishes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
from typing import Protocol

import asyncpg
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

log = logging.getLogger(__name__)


class MessageEraser(Protocol):
    async def erase(self, sids: list[str], phones: list[str]) -> int:
        """Delete these messages and every message to or from these phones at the
        provider; how many were deleted. Raises ``ProviderUnavailable`` to be retried."""
        ...


class ProviderUnavailable(Exception):
    """The provider could not be asked (network, 5xx, 429): try the erasure again."""


class TwilioMessageEraser:
    """Through the twilio SDK: ``client.messages(sid).delete()`` (404: already gone)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _delete(self, sid: str) -> bool:
        try:
            return bool(self._client.messages(sid).delete())
        except TwilioRestException as exc:
            if exc.status == 404:
                return False
            if exc.status == 429 or exc.status >= 500:
                raise ProviderUnavailable(f"twilio {exc.status}") from exc
            raise
        except OSError as exc:
            raise ProviderUnavailable(type(exc).__name__) from exc

    def _listed(self, phone: str) -> list[str]:
        try:
            found = [str(m.sid) for m in self._client.messages.list(to=phone, page_size=1000)]
            found += [str(m.sid) for m in self._client.messages.list(from_=phone, page_size=1000)]
        except (TwilioException, OSError) as exc:
            raise ProviderUnavailable(type(exc).__name__) from exc
        return found

    def _erase(self, sids: list[str], phones: list[str]) -> int:
        deleted = sum(self._delete(sid) for sid in dict.fromkeys(sids))
        tried = set(sids)
        # List again until nothing new is listed: a provider may list one page at a time,
        # and deleted messages leave the listing.
        while True:
            fresh = [s for phone in phones for s in self._listed(phone) if s not in tried]
            if not fresh:
                return deleted
            tried.update(fresh)
            deleted += sum(self._delete(sid) for sid in dict.fromkeys(fresh))

    async def erase(self, sids: list[str], phones: list[str]) -> int:
        return await asyncio.to_thread(self._erase, sids, phones)


def phone_hash(key: bytes, phone: str) -> str:
    return hmac.new(key, b"suppressed-phone|" + phone.encode(), hashlib.sha256).hexdigest()


async def provider_copies(pool: asyncpg.Pool, patient_id: str) -> tuple[list[str], list[str]]:
    """The SIDs of the patient's messages and the patient's phone(s), from the ledger."""
    rows = await pool.fetch(
        "SELECT provider_sid, to_phone, audience FROM notifier.notifications WHERE patient_id = $1",
        patient_id,
    )
    sids = sorted({r["provider_sid"] for r in rows if r["provider_sid"]})
    phones = sorted({r["to_phone"] for r in rows if r["audience"] == "patient"})
    return sids, phones


async def erase_ledger(
    pool: asyncpg.Pool, patient_id: str, hash_key: bytes, now: dt.datetime
) -> int:
    """Delete the patient's rows in one transaction; keep a hashed phone if they opted out."""
    async with pool.acquire() as conn, conn.transaction():
        suppressed = await conn.fetchval(
            "SELECT suppressed FROM notifier.suppressions WHERE patient_id = $1", patient_id
        )
        phones = await conn.fetch(
            "SELECT DISTINCT to_phone FROM notifier.notifications"
            " WHERE patient_id = $1 AND audience = 'patient'",
            patient_id,
        )
        if suppressed:
            await conn.executemany(
                "INSERT INTO notifier.suppressed_phones (phone_hash, changed_at) VALUES ($1, $2)"
                " ON CONFLICT (phone_hash) DO NOTHING",
                [(phone_hash(hash_key, r["to_phone"]), now) for r in phones],
            )
        removed = 0
        for statement in (
            "DELETE FROM notifier.provider_statuses WHERE message_sid IN (SELECT provider_sid"
            " FROM notifier.notifications WHERE patient_id = $1 AND provider_sid IS NOT NULL)",
            "DELETE FROM notifier.notifications WHERE patient_id = $1",
            "DELETE FROM notifier.suppressions WHERE patient_id = $1",
            "DELETE FROM notifier.patient_teams WHERE patient_id = $1",
        ):
            removed += len(await conn.fetch(statement + " RETURNING 1", patient_id))
        await conn.execute(
            "INSERT INTO notifier.erased_patients (patient_id, erased_at) VALUES ($1, $2)"
            " ON CONFLICT (patient_id) DO NOTHING",
            patient_id,
            now,
        )
    return removed


async def was_erased(pool: asyncpg.Pool, patient_id: str) -> bool:
    found = await pool.fetchval(
        "SELECT 1 FROM notifier.erased_patients WHERE patient_id = $1", patient_id
    )
    return found is not None


async def enrolled_again(pool: asyncpg.Pool, patient_id: str) -> None:
    await pool.execute("DELETE FROM notifier.erased_patients WHERE patient_id = $1", patient_id)


async def phone_suppressed(pool: asyncpg.Pool, hash_key: bytes, phone: str) -> bool:
    found = await pool.fetchval(
        "SELECT 1 FROM notifier.suppressed_phones WHERE phone_hash = $1",
        phone_hash(hash_key, phone),
    )
    return found is not None
