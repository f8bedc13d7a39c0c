"""A symptom report travels ingest → Kafka → assessor → notifier → SMS sandbox."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.e2e.conftest import Stack, random_patient_id, random_phone, stack_now
from tests.e2e.daytime import enroll
from tools.client import eventually


async def test_report_on_day_5_sends_one_reassurance_text(stack: Stack) -> None:
    patient_id, phone, now = await enroll(stack, days_since_surgery=5)
    report_id = str(uuid.uuid4())
    body = {
        "event_id": report_id,
        "patient_id": patient_id,
        "occurred_at": now.isoformat(),
        "severity": 2,
        "source": "app",
    }
    first = await stack.ingest.post("/v1/symptom-reports", json=body)
    again = await stack.ingest.post("/v1/symptom-reports", json=body)  # a client retry
    assert first.status_code == again.status_code == 202
    assert first.json()["event_id"] == report_id

    async def texts() -> list[dict[str, Any]]:
        r = await stack.sandbox.get("/sandbox/messages", params={"to": phone})
        return [m for m in r.json()["messages"] if m["to"] == phone]

    received = await eventually(texts, within=30)
    assert len(received) == 1
    assert "3 in 10" in received[0]["body"]

    recovery = await stack.assessor.get(f"/v1/patients/{patient_id}/recovery")
    assert recovery.status_code == 200
    doc = recovery.json()
    assert doc["phase"] == "expected_window"
    assert doc["day"] == 5
    assert [r["event_id"] for r in doc["reports"]] == [report_id]  # the retry counted once

    async def sent() -> list[dict[str, Any]]:
        r = await stack.notifier.get(f"/v1/patients/{patient_id}/notifications")
        return [n for n in r.json()["notifications"] if n["status"] in ("sent", "delivered")]

    notes = await eventually(sent, within=30)
    assert [(n["kind"], n["audience"], n["to"]) for n in notes] == [
        ("reassurance", "patient", phone)
    ]
    assert notes[0]["provider_sid"] == received[0]["sid"]

    await asyncio.sleep(1.0)  # nothing further arrives (no second text for the retry)
    assert len(await texts()) == 1


async def test_invalid_reports_publish_nothing(stack: Stack) -> None:
    patient_id, _, now = await enroll(stack, days_since_surgery=10)

    bad_bodies = [
        {"patient_id": patient_id, "occurred_at": now.isoformat(), "severity": 7},
        {
            "patient_id": patient_id,
            "occurred_at": now.replace(tzinfo=None).isoformat(),
            "severity": 2,
        },
        {"patient_id": patient_id, "occurred_at": now.isoformat()},
        {"patient_id": patient_id, "occurred_at": now.isoformat(), "severity": 2, "extra": 1},
    ]
    for bad in bad_bodies:
        r = await stack.ingest.post("/v1/symptom-reports", json=bad)
        assert r.status_code == 422, (bad, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_fields"
        assert error["fields"]

    malformed = await stack.ingest.post(
        "/v1/symptom-reports",
        content=b'{"patient_id": ',
        headers={"content-type": "application/json"},
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "malformed_json"

    unknown = await stack.ingest.post(
        "/v1/symptom-reports",
        json={"patient_id": random_patient_id(), "occurred_at": now.isoformat(), "severity": 1},
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_patient"

    no_token = await stack.ingest.post(
        "/v1/symptom-reports", json={}, headers={"Authorization": ""}
    )
    assert no_token.status_code == 401

    # One valid report after the bad ones: the patient's partition is ordered, so if any
    # bad one had been published the assessor would show it before this one.
    good = await stack.ingest.post(
        "/v1/symptom-reports",
        json={"patient_id": patient_id, "occurred_at": now.isoformat(), "severity": 0},
    )
    assert good.status_code == 202

    async def reports() -> list[dict[str, Any]]:
        r = await stack.assessor.get(f"/v1/patients/{patient_id}/recovery")
        return r.json()["reports"] if r.status_code == 200 else []

    seen = await eventually(reports, within=30)
    assert [r["event_id"] for r in seen] == [good.json()["event_id"]]


async def test_invalid_enrollments_are_refused(stack: Stack) -> None:
    now = await stack_now(stack)
    base = {
        "patient_id": random_patient_id(),
        "phone": random_phone(),
        "timezone": "America/Chicago",
        "language": "en",
        "surgery_date": now.date().isoformat(),
        "baseline_severity": 3,
        "care_team": {"on_call": random_phone()},
        "sms_consent": True,
    }
    for change in (
        {"phone": "555-1234"},
        {"timezone": "Nowhere/Land"},
        {"baseline_severity": 5},
        {"patient_id": "bad id!"},
        {"language": "de"},
    ):
        r = await stack.ingest.post("/v1/patients", json=base | change)
        assert r.status_code == 422, (change, r.text)
        assert r.json()["error"]["fields"][0]["field"] == next(iter(change))
    unknown = await stack.assessor.get(f"/v1/patients/{base['patient_id']}/recovery")
    assert unknown.status_code == 404


async def test_every_service_is_ready(stack: Stack) -> None:
    for client in (stack.ingest, stack.assessor, stack.notifier, stack.sandbox):
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "# TYPE" in metrics.text
