"""Texts from phones, through the SMS sandbox's signed webhook, into the system.

Done-when checks of the ingest issue: a texted "2" from an enrolled phone becomes a report
in the assessor's read API; a texted "STOP" becomes a ConsentChanged event.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.e2e.conftest import Stack
from tests.e2e.ingest_support import (
    PATIENT_EVENTS,
    PROVIDER_EVENTS,
    TopicWatch,
    enroll,
    eventually,
    inbound_form,
    new_sid,
    post_webhook,
)


async def text(stack: Stack, phone: str, body: str) -> dict[str, Any]:
    r = await stack.sandbox.post("/sandbox/inbound", json={"from": phone, "body": body})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    assert result["status"] == 200, result
    return result


async def test_a_texted_2_becomes_a_report_in_the_assessor(stack: Stack, watch: TopicWatch) -> None:
    patient = await enroll(stack)
    await watch.mark()
    pid = patient["patient_id"]
    result = await text(stack, patient["phone"], "2")
    assert "recorded your twitching as 2" in result["twiml"]

    [record] = await watch.records(pid)
    assert record.topic == PATIENT_EVENTS
    assert record.key == pid
    event = record.value
    assert event["type"] == "symptom.reported"
    assert event["source"] == "sms"
    assert event["payload"] == {"severity": 2, "note": None, "channel": "sms"}

    async def reports() -> list[dict[str, Any]]:
        r = await stack.assessor.get(f"/v1/patients/{pid}/recovery")
        return r.json()["reports"] if r.status_code == 200 else []

    seen = await eventually(reports, within=15)
    assert [(r["event_id"], r["severity"]) for r in seen] == [(event["event_id"], 2)]

    # The sandbox delivered ingest's TwiML answer to the phone.
    messages = (
        await stack.sandbox.get("/sandbox/messages", params={"to": patient["phone"]})
    ).json()
    replies = [m for m in messages["messages"] if m["to"] == patient["phone"]]
    assert any("recorded your twitching as 2" in m["body"] for m in replies)


async def test_a_texted_stop_publishes_consent_changed(stack: Stack, watch: TopicWatch) -> None:
    patient = await enroll(stack)
    await watch.mark()
    result = await text(stack, patient["phone"], "STOP")
    assert "<Message>" not in result["twiml"]  # Twilio itself confirms an opt-out
    [record] = await watch.records(patient["patient_id"])
    assert record.value["type"] == "consent.changed"
    assert record.value["payload"] == {"sms_consent": False, "reason": "stop"}
    assert record.value["source"] == "sms"

    await watch.mark()
    await text(stack, patient["phone"], "START")
    [record] = await watch.records(patient["patient_id"])
    assert record.value["payload"] == {"sms_consent": True, "reason": "start"}


async def test_twilio_opt_out_type_field_counts_as_stop(stack: Stack, watch: TopicWatch) -> None:
    patient = await enroll(stack)
    await watch.mark()
    form = {**inbound_form(patient["phone"], "please stop texting me"), "OptOutType": "STOP"}
    r = await post_webhook(stack.ingest, "/v1/twilio/inbound", form)
    assert r.status_code == 200
    [record] = await watch.records(patient["patient_id"])
    assert record.value["payload"] == {"sms_consent": False, "reason": "stop"}


async def test_free_text_reaches_the_assessor_as_a_note(stack: Stack, watch: TopicWatch) -> None:
    patient = await enroll(stack, language="es")
    await watch.mark()
    result = await text(stack, patient["phone"], "tengo fiebre y la cara caída")
    assert "Responda con un solo número" in result["twiml"]  # no grade: asked for one
    [record] = await watch.records(patient["patient_id"])
    assert record.value["payload"] == {
        "severity": None,
        "note": "tengo fiebre y la cara caída",
        "channel": "sms",
    }
    # Asked once: a second reply without a grade is recorded and thanked, not asked again
    # (the open ask lives in the registry, PostgreSQL) ...
    await watch.mark()
    again = await text(stack, patient["phone"], "peor que ayer")
    assert "Gracias" in again["twiml"]
    assert "número" not in again["twiml"]
    [record] = await watch.records(patient["patient_id"])
    assert record.value["payload"]["note"] == "peor que ayer"
    # ... and a grade closes the ask, so the next unclear reply is asked again.
    assert "Registramos sus espasmos como 3" in (await text(stack, patient["phone"], "3"))["twiml"]
    third = await text(stack, patient["phone"], "igual")
    assert "Responda con un solo número" in third["twiml"]


async def test_help_answers_and_publishes_nothing(stack: Stack, watch: TopicWatch) -> None:
    patient = await enroll(stack)
    await watch.mark()
    result = await text(stack, patient["phone"], "HELP")
    assert "STOP" in result["twiml"]
    assert await watch.records(patient["patient_id"]) == []


async def test_ack_from_the_care_team_goes_to_provider_events(
    stack: Stack, watch: TopicWatch
) -> None:
    patient = await enroll(stack)
    await watch.mark()
    code = uuid.uuid4().hex[:8].upper()
    result = await text(stack, patient["care_team"]["backup"], f"ack {code}")
    assert f"ACK {code} received" in result["twiml"]
    [record] = await watch.records(code)
    assert record.topic == PROVIDER_EVENTS
    assert record.key == code
    assert record.value["type"] == "page.ack_received"
    assert record.value["payload"] == {
        "ack_code": code,
        "from_phone": patient["care_team"]["backup"],
        "message_sid": result["message_sid"],
    }


async def test_status_callback_goes_to_provider_events(stack: Stack, watch: TopicWatch) -> None:
    sid = new_sid()
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC00000000000000000000000000000000",
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "To": "+15551230001",
        "From": "+15005550006",
        "ApiVersion": "2010-04-01",
    }
    r = await post_webhook(stack.ingest, "/v1/twilio/status", form)
    assert r.status_code == 204, r.text
    assert r.content == b""
    [record] = await watch.records(sid)
    assert record.topic == PROVIDER_EVENTS
    assert record.key == sid
    assert record.value["type"] == "message.status_reported"
    assert record.value["payload"] == {
        "message_sid": sid,
        "status": "undelivered",
        "error_code": 30003,
    }


async def test_replayed_webhook_publishes_the_same_event_once(
    stack: Stack, watch: TopicWatch
) -> None:
    patient = await enroll(stack)
    await watch.mark()
    form = inbound_form(patient["phone"], "1")
    answers = [await post_webhook(stack.ingest, "/v1/twilio/inbound", form) for _ in range(3)]
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert all(a.headers["content-type"].startswith("text/xml") for a in answers)
    assert len(await watch.records(patient["patient_id"])) == 1
