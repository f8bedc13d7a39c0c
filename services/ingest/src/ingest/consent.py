"""The consent record: every change of a patient's SMS consent, kept with when, how and by
whom (``ingest.consent_record``, written in the transaction that changes the consent).

A TCPA or CTIA complaint asks exactly this: when the patient agreed to the texts, when and
how they opted out or back in, and who recorded it. The current flag alone (the
registry's ``sms_consent``) cannot answer it. The rows hold no phone number and no message
text: the patient by id, the SMS keyword by its kind, a clinician by the identity
provider's subject.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

import asyncpg

Channel = Literal["enrollment_form", "sms_keyword", "clinician_phone"]
#: The actor of a change the patient made by texting a keyword.
PATIENT_BY_SMS = "patient by SMS"


async def record(
    conn: asyncpg.Connection,
    *,
    patient_id: str,
    sms_consent: bool,
    channel: Channel,
    actor: str,
    event_id: uuid.UUID,
    occurred_at: dt.datetime,
    keyword: Literal["stop", "start"] | None = None,
) -> None:
    """Add one change (a replayed request with the same event id adds nothing)."""
    await conn.execute(
        """
        INSERT INTO ingest.consent_record
            (patient_id, sms_consent, channel, actor, keyword, event_id, occurred_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (event_id) DO NOTHING
        """,
        patient_id,
        sms_consent,
        channel,
        actor[:256],
        keyword,
        event_id,
        occurred_at,
    )


async def history(
    conn: asyncpg.Connection | asyncpg.Pool, patient_id: str
) -> list[dict[str, object]]:
    """The patient's consent changes, oldest first."""
    rows = await conn.fetch(
        """
        SELECT sms_consent, channel, actor, keyword, event_id, occurred_at, recorded_at
        FROM ingest.consent_record WHERE patient_id = $1 ORDER BY id
        """,
        patient_id,
    )
    return [
        {
            "sms_consent": r["sms_consent"],
            "channel": r["channel"],
            "actor": r["actor"],
            "keyword": r["keyword"],
            "event_id": str(r["event_id"]),
            "occurred_at": r["occurred_at"].isoformat(),
            "recorded_at": r["recorded_at"].isoformat(),
        }
        for r in rows
    ]
