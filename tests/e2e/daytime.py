"""Patients enrolled where it is daytime now, so no quiet-hour deferral delays their texts
(no tests here)."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from tests.e2e.conftest import Stack, daytime_zone, random_patient_id, random_phone, stack_now


async def enroll(stack: Stack, days_since_surgery: int) -> tuple[str, str, dt.datetime]:
    """Enroll a patient in a time zone where it is daytime now (no quiet-hour deferral)."""
    patient_id, phone = random_patient_id(), random_phone()
    now = await stack_now(stack)
    tz = daytime_zone(now)
    today = now.astimezone(ZoneInfo(tz)).date()
    response = await stack.ingest.post(
        "/v1/patients",
        json={
            "patient_id": patient_id,
            "phone": phone,
            "timezone": tz,
            "language": "en",
            "surgery_date": (today - dt.timedelta(days=days_since_surgery)).isoformat(),
            "baseline_severity": 3,
            "care_team": {"on_call": random_phone(), "timezone": tz},
            "sms_consent": True,
        },
    )
    assert response.status_code == 202, response.text
    uuid.UUID(response.json()["event_id"])
    return patient_id, phone, now
