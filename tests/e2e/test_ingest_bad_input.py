"""Bad input at ingest's door: for each case, the status, the error code, and that
nothing reached the topic (read back from Kafka from the offsets taken before the request).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, random_patient_id, random_phone
from tests.e2e.ingest_support import (
    TopicWatch,
    clock_now,
    enroll,
    enrollment_body,
    error_code,
    inbound_form,
    new_sid,
    post_webhook,
    sign,
)


def report(pid: str, /, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient_id": pid,
        "occurred_at": clock_now().isoformat(),
        "severity": 2,
        "source": "app",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.fixture
async def patient(stack: Stack) -> dict[str, Any]:
    return await enroll(stack)


async def assert_refused(
    watch: TopicWatch, response: httpx.Response, status: int, code: str, *keys: str
) -> None:
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert await watch.records(*keys) == []


# --- symptom reports ------------------------------------------------------------------


REPORT_CASES: list[tuple[str, dict[str, Any], int, str]] = [
    ("severity as a string", {"severity": "2"}, 422, "invalid_fields"),
    ("severity as a float", {"severity": 2.5}, 422, "invalid_fields"),
    ("severity as a bool", {"severity": True}, 422, "invalid_fields"),
    ("severity below 0", {"severity": -1}, 422, "invalid_fields"),
    ("severity above 4", {"severity": 5}, 422, "invalid_fields"),
    ("occurred_at as a number", {"occurred_at": 1767225600}, 422, "invalid_fields"),
    (
        "occurred_at without an offset",
        {"occurred_at": "2026-03-09T18:30:00"},
        422,
        "invalid_fields",
    ),
    ("occurred_at a date only", {"occurred_at": "2026-03-09"}, 422, "invalid_fields"),
    (
        "occurred_at far in the future",
        {"occurred_at": (clock_now() + dt.timedelta(days=30)).isoformat()},
        422,
        "invalid_fields",
    ),
    ("occurred_at in 1970", {"occurred_at": "1970-01-01T00:00:00Z"}, 422, "invalid_fields"),
    ("unknown field", {"mood": "fine"}, 422, "invalid_fields"),
    ("unknown source", {"source": "fax"}, 422, "invalid_fields"),
    ("neither severity nor note", {"severity": None}, 422, "invalid_fields"),
    ("blank note only", {"severity": None, "note": "   "}, 422, "invalid_fields"),
    ("note over 1000 characters", {"note": "x" * 1001}, 422, "invalid_fields"),
    ("event_id not a uuid", {"event_id": "not-a-uuid"}, 422, "invalid_fields"),
    ("patient_id with a space", {"patient_id": "p 001"}, 422, "invalid_fields"),
]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [pytest.param(c, s, k, id=name) for name, c, s, k in REPORT_CASES],
)
async def test_bad_report_is_refused_and_publishes_nothing(
    stack: Stack,
    patient: dict[str, Any],
    watch: TopicWatch,
    change: dict[str, Any],
    status: int,
    code: str,
) -> None:
    r = await stack.ingest.post("/v1/symptom-reports", json=report(patient["patient_id"], **change))
    await assert_refused(watch, r, status, code, patient["patient_id"])


async def test_malformed_json_is_400(
    stack: Stack, patient: dict[str, Any], watch: TopicWatch
) -> None:
    pid = patient["patient_id"]
    for raw in (f'{{"patient_id": "{pid}", "severity": 2', "{'single': 'quotes'}", "\xff\xfe"):
        r = await stack.ingest.post(
            "/v1/symptom-reports",
            content=raw.encode("latin-1"),
            headers={"content-type": "application/json"},
        )
        await assert_refused(watch, r, 400, "malformed_json", pid)


async def test_a_json_array_is_400(
    stack: Stack, patient: dict[str, Any], watch: TopicWatch
) -> None:
    r = await stack.ingest.post("/v1/symptom-reports", json=[report(patient["patient_id"])])
    await assert_refused(watch, r, 400, "invalid_body", patient["patient_id"])


async def test_unknown_patient_is_404(stack: Stack, watch: TopicWatch) -> None:
    pid = random_patient_id()
    r = await stack.ingest.post("/v1/symptom-reports", json=report(pid))
    await assert_refused(watch, r, 404, "unknown_patient", pid)


async def test_oversized_body_is_413(
    stack: Stack, patient: dict[str, Any], watch: TopicWatch
) -> None:
    pid = patient["patient_id"]
    big = report(pid, note="x" * (65 * 1024))
    r = await stack.ingest.post("/v1/symptom-reports", json=big)
    await assert_refused(watch, r, 413, "payload_too_large", pid)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"patient_id": "' + pid.encode() + b'", "note": "'
        for _ in range(80):
            yield b"y" * 1024
        yield b'"}'

    r = await stack.ingest.post(
        "/v1/symptom-reports", content=chunks(), headers={"content-type": "application/json"}
    )
    await assert_refused(watch, r, 413, "payload_too_large", pid)


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer wrong-token-0000000000", "Basic dXNlcjpwYXNz", "{token}"],
    ids=["missing", "empty bearer", "wrong token", "basic auth", "no scheme"],
)
async def test_missing_or_wrong_token_is_401(
    stack: Stack, patient: dict[str, Any], watch: TopicWatch, authorization: str
) -> None:
    pid = patient["patient_id"]
    headers = {"Authorization": authorization.format(token=stack.token)}
    r = await stack.ingest.post("/v1/symptom-reports", json=report(pid), headers=headers)
    await assert_refused(watch, r, 401, "unauthorized", pid)
    body = enrollment_body(patient_id=pid)
    r = await stack.ingest.post("/v1/patients", json=body, headers=headers)
    await assert_refused(watch, r, 401, "unauthorized", pid)


async def test_same_event_id_with_another_body_is_409_and_counted_once(
    stack: Stack, patient: dict[str, Any], watch: TopicWatch
) -> None:
    pid = patient["patient_id"]
    event_id = str(uuid.uuid4())
    first = await stack.ingest.post("/v1/symptom-reports", json=report(pid, event_id=event_id))
    again = await stack.ingest.post(
        "/v1/symptom-reports", json=report(pid, event_id=event_id, severity=3)
    )
    assert first.status_code == 202, first.text
    assert again.status_code == 409
    assert error_code(again) == "idempotency_conflict"
    published = await watch.records(pid)
    assert [r.value["event_id"] for r in published] == [event_id]
    assert published[0].value["payload"]["severity"] == 2


async def test_idempotency_key_header_makes_a_retry_publish_once(
    stack: Stack, patient: dict[str, Any], watch: TopicWatch
) -> None:
    pid = patient["patient_id"]
    body = report(pid)
    headers = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    answers = [
        await stack.ingest.post("/v1/symptom-reports", json=body, headers=headers) for _ in range(3)
    ]
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["event_id"] for a in answers}) == 1
    conflict = await stack.ingest.post(
        "/v1/symptom-reports", json={**body, "severity": 4}, headers=headers
    )
    assert conflict.status_code == 409
    assert error_code(conflict) == "idempotency_conflict"
    published = await watch.records(pid)
    assert [r.value["event_id"] for r in published] == [answers[0].json()["event_id"]]


# --- enrollments ----------------------------------------------------------------------


ENROLL_CASES: list[tuple[str, dict[str, Any]]] = [
    ("phone not E.164", {"phone": "555-123-0001"}),
    ("phone too short", {"phone": "+1555123"}),
    ("phone with spaces", {"phone": "+1 555 123 0001"}),
    ("phone of no country", {"phone": "+999555123456"}),
    ("care team phone invalid", {"care_team": {"on_call": "12345"}}),
    ("care team unknown field", {"care_team": {"on_call": "+15550001111", "pager": "1"}}),
    ("time zone unknown", {"timezone": "America/Springfield"}),
    ("time zone an offset", {"timezone": "+05:00"}),
    ("baseline 0", {"baseline_severity": 0}),
    ("baseline 5", {"baseline_severity": 5}),
    ("baseline as a string", {"baseline_severity": "3"}),
    ("consent as a string", {"sms_consent": "yes"}),
    ("language unknown", {"language": "de"}),
    ("surgery date not a date", {"surgery_date": "next tuesday"}),
    ("surgery date impossible", {"surgery_date": "2026-02-30"}),
    ("surgery date in 1990", {"surgery_date": "1990-01-01"}),
    ("surgery date in 2100", {"surgery_date": "2100-01-01"}),
    ("unknown field", {"ssn": "123-45-6789"}),
    ("care team missing", {"care_team": None}),
]


@pytest.mark.parametrize("change", [pytest.param(c, id=n) for n, c in ENROLL_CASES])
async def test_bad_enrollment_is_422_and_publishes_nothing(
    stack: Stack, watch: TopicWatch, change: dict[str, Any]
) -> None:
    body = enrollment_body(**change)
    r = await stack.ingest.post("/v1/patients", json=body)
    await assert_refused(watch, r, 422, "invalid_fields", body["patient_id"])
    unknown = await stack.ingest.post("/v1/symptom-reports", json=report(body["patient_id"]))
    assert unknown.status_code == 404  # and nothing was registered either


async def test_a_phone_enrolled_for_another_patient_is_409(
    stack: Stack, patient: dict[str, Any], watch: TopicWatch
) -> None:
    other = enrollment_body(phone=patient["phone"])
    r = await stack.ingest.post("/v1/patients", json=other)
    await assert_refused(watch, r, 409, "phone_in_use", other["patient_id"])


# --- Twilio webhooks ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/twilio/inbound", "/v1/twilio/status"])
@pytest.mark.parametrize(
    "signature", ["missing", "garbage", "other token", "other url", "tampered"]
)
async def test_bad_twilio_signature_is_403(
    stack: Stack, patient: dict[str, Any], watch: TopicWatch, path: str, signature: str
) -> None:
    if path.endswith("inbound"):
        form = inbound_form(patient["phone"], "2")
    else:
        form = {"MessageSid": new_sid(), "MessageStatus": "delivered", "AccountSid": "AC0"}
    sent = dict(form)
    header: str | None
    if signature == "missing":
        header = None
    elif signature == "garbage":
        header = "c2lnbmF0dXJl"
    elif signature == "other token":
        header = sign(path, form, token="not-the-auth-token")
    elif signature == "other url":
        from twilio.request_validator import RequestValidator

        header = RequestValidator("sandbox-auth-token").compute_signature(
            "https://attacker.example" + path, form
        )
    else:
        header = sign(path, form)
        sent["Body" if "Body" in form else "MessageStatus"] = "4" if "Body" in form else "failed"
    r = await post_webhook(stack.ingest, path, sent, signature=header)
    await assert_refused(
        watch, r, 403, "invalid_signature", patient["patient_id"], form["MessageSid"]
    )


async def test_replayed_message_sid_is_answered_alike_and_published_once(
    stack: Stack, patient: dict[str, Any], watch: TopicWatch
) -> None:
    form = inbound_form(patient["phone"], "3")
    first = await post_webhook(stack.ingest, "/v1/twilio/inbound", form)
    replay = await post_webhook(stack.ingest, "/v1/twilio/inbound", form)
    assert first.status_code == replay.status_code == 200
    assert first.headers["content-type"].startswith("text/xml")
    assert replay.text == first.text
    published = await watch.records(patient["patient_id"])
    assert len(published) == 1
    assert published[0].value["payload"] == {"severity": 3, "note": None, "channel": "sms"}
    tampered = await post_webhook(stack.ingest, "/v1/twilio/inbound", {**form, "Body": "4"})
    assert tampered.status_code == 409
    assert error_code(tampered) == "idempotency_conflict"
    assert len(await watch.records(patient["patient_id"])) == 1


async def test_signed_webhook_without_a_message_sid_is_422(
    stack: Stack, patient: dict[str, Any], watch: TopicWatch
) -> None:
    form = inbound_form(patient["phone"], "2")
    for broken in ({**form, "MessageSid": ""}, {**form, "MessageSid": "SM123"}):
        r = await post_webhook(stack.ingest, "/v1/twilio/inbound", broken)
        await assert_refused(watch, r, 422, "invalid_fields", patient["patient_id"])
    status = {"MessageSid": new_sid(), "MessageStatus": "teleported"}
    r = await post_webhook(stack.ingest, "/v1/twilio/status", status)
    await assert_refused(watch, r, 422, "invalid_fields", status["MessageSid"])


async def test_unknown_phone_gets_a_reply_and_publishes_nothing(
    stack: Stack, watch: TopicWatch
) -> None:
    phone = random_phone()
    form = inbound_form(phone, "2")
    r = await post_webhook(stack.ingest, "/v1/twilio/inbound", form)
    assert r.status_code == 200
    assert "not enrolled" in r.text
    assert await watch.records(phone, form["MessageSid"]) == []


async def test_ambiguous_reply_asks_again_and_records_no_grade(
    stack: Stack, patient: dict[str, Any], watch: TopicWatch
) -> None:
    form = inbound_form(patient["phone"], "2 or 3, it was 4 two days ago")
    r = await post_webhook(stack.ingest, "/v1/twilio/inbound", form)
    assert r.status_code == 200
    assert "<Message>" in r.text
    [record] = await watch.records(patient["patient_id"])
    assert record.value["type"] == "symptom.reported"
    assert record.value["payload"]["severity"] is None
    assert record.value["payload"]["note"] == "2 or 3, it was 4 two days ago"
