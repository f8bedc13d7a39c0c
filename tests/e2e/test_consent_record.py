"""The consent record on the running stack: each change (the enrollment form, a texted
STOP, a clinician recording START on the phone) is kept with when, how and by whom, and
read back by staff; it holds no phone number or message text."""

from __future__ import annotations

import datetime as dt
import json

from tests.e2e.conftest import Stack, random_patient_id
from tests.e2e.ingest_support import enroll
from tools.client import eventually


async def test_every_consent_change_is_kept_with_when_how_and_by_whom(stack: Stack) -> None:
    patient = await enroll(stack, patient_id=random_patient_id())
    pid, phone = patient["patient_id"], patient["phone"]

    texted = await stack.sandbox.post("/sandbox/inbound", json={"from": phone, "body": "STOP"})
    assert texted.status_code == 200, texted.text
    assert texted.json()["status"] == 200, texted.json()
    recorded = await stack.ingest.post(f"/v1/patients/{pid}/consent", json={"sms_consent": True})
    assert recorded.status_code == 202, recorded.text

    r = await stack.ingest.get(f"/v1/patients/{pid}/consent")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sms_consent"] is True
    changes = body["changes"]
    assert [(c["channel"], c["sms_consent"], c["actor"], c["keyword"]) for c in changes] == [
        ("enrollment_form", True, "development", None),
        ("sms_keyword", False, "patient by SMS", "stop"),
        ("clinician_phone", True, "development", None),
    ]
    times = [dt.datetime.fromisoformat(c["occurred_at"]) for c in changes]
    assert times == sorted(times)
    assert recorded.json()["event_id"] == changes[2]["event_id"]
    # PHI-free: neither the phone nor the texted words are stored or shown.
    assert phone not in json.dumps(body)
    assert phone.lstrip("+") not in json.dumps(body)

    # A replayed request (same idempotency key) records the change once.
    key = {"Idempotency-Key": "consent-" + pid}
    for _ in range(2):
        again = await stack.ingest.post(
            f"/v1/patients/{pid}/consent", json={"sms_consent": False}, headers=key
        )
        assert again.status_code == 202, again.text
    r = await stack.ingest.get(f"/v1/patients/{pid}/consent")
    assert len(r.json()["changes"]) == 4
    assert r.json()["sms_consent"] is False

    # Reading it is audited (the trail writes in batches: wait for it).
    async def consent_reads() -> list[dict[str, object]]:
        audit = await stack.ingest.get("/v1/audit", params={"patient_id": pid})
        assert audit.status_code == 200, audit.text
        return [
            e
            for e in audit.json()["events"]
            if e.get("resource") == "consent" and e.get("action") == "patient.read"
        ]

    assert await eventually(consent_reads, within=20)


async def test_an_unknown_patient_has_no_consent_record(stack: Stack) -> None:
    r = await stack.ingest.get(f"/v1/patients/{random_patient_id()}/consent")
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "unknown_patient"


async def test_reading_it_needs_a_token(stack: Stack) -> None:
    r = await stack.ingest.get(
        f"/v1/patients/{random_patient_id()}/consent", headers={"Authorization": ""}
    )
    assert r.status_code == 401
