"""The one factory for ``notification.send`` decisions in tests: the event the assessor puts
on ``decisions.v1``, with the event id derived from the dedupe key as the assessor derives it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from shared.events import SendNotification

#: A decision recorded and due long ago: due whatever a stack's (simulated) clock says.
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def decision(
    patient_id: str,
    kind: str,
    *,
    at: dt.datetime,
    key: str | None = None,
    audience: str = "patient",
    urgency: str = "routine",
    to: str = "+15551230001",
    backup_to: str | None = None,
    language: str = "en",
    due_at: dt.datetime | None = None,
    facts: dict[str, Any] | None = None,
    rule: str | None = None,
    team: str | None = None,
) -> SendNotification:
    """A decision recorded at ``at`` and due at ``due_at`` (default: ``at``); the dedupe key
    is ``key``, or a fresh one for ``patient_id`` and ``kind``."""
    key = key or f"{patient_id}:{kind}:{uuid.uuid4()}"
    payload: dict[str, Any] = {
        "dedupe_key": key,
        "kind": kind,
        "audience": audience,
        "urgency": urgency,
        "to": to,
        "backup_to": backup_to,
        "language": language,
        "timezone": "America/Chicago",
        "due_at": at if due_at is None else due_at,
        "facts": facts or {},
        "rule": rule,
    }
    if team is not None:
        payload["team"] = team
    return SendNotification.model_validate(
        {
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
            "occurred_at": at,
            "recorded_at": at,
            "patient_id": patient_id,
            "source": "assessor",
            "payload": payload,
        }
    )
