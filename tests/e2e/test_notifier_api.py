"""The notifier's API on the running stack (``make up``), fed through ``decisions.v1`` as the
assessor feeds it, delivering to the stack's SMS sandbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.events import SendNotification
from shared.kafka import create_producer, publish
from shared.kafka_security import default_bootstrap
from shared.topics import DECISIONS
from tests.e2e.conftest import Stack, random_patient_id, random_phone

pytestmark = pytest.mark.e2e

FIELDS = {
    "notification_id",
    "kind",
    "audience",
    "to",
    "status",
    "dedupe_key",
    "created_at",
    "scheduled_for",
    "sent_at",
    "provider_sid",
    "body",
}
STATUSES = {
    "scheduled",
    "sending",
    "sent",
    "delivered",
    "failed",
    "suppressed",
    "acknowledged",
    "escalated",
}
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)  # due whatever the stack's clock says


@pytest.fixture
async def decisions() -> AsyncIterator[Any]:
    producer = create_producer(default_bootstrap(), "e2e")
    await producer.start()
    yield producer
    await producer.stop()


def decision(patient_id: str, kind: str, audience: str, urgency: str, to: str) -> SendNotification:
    key = f"{patient_id}:{kind}:e2e"
    return SendNotification.model_validate(
        {
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
            "occurred_at": LONG_AGO,
            "recorded_at": LONG_AGO,
            "patient_id": patient_id,
            "source": "assessor",
            "payload": {
                "dedupe_key": key,
                "kind": kind,
                "audience": audience,
                "urgency": urgency,
                "to": to,
                "backup_to": random_phone() if audience == "care_team" else None,
                "language": "en",
                "timezone": "America/Chicago",
                "due_at": LONG_AGO,
                "facts": {"day": 40, "severity": 4, "baseline_severity": 3},
                "rule": "worsening.above_baseline" if audience == "care_team" else None,
            },
        }
    )


async def settled(stack: Stack, patient_id: str, count: int) -> list[dict[str, Any]]:
    for _ in range(100):
        r = await stack.notifier.get(f"/v1/patients/{patient_id}/notifications")
        assert r.status_code == 200
        found: list[dict[str, Any]] = r.json()["notifications"]
        if len(found) == count and all(n["status"] in {"sent", "delivered"} for n in found):
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"not settled: {found}")


async def test_notifications_acks_and_errors(stack: Stack, decisions: Any) -> None:
    patient_id, phone, on_call = random_patient_id(), random_phone(), random_phone()
    text = decision(patient_id, "reassurance", "patient", "routine", phone)
    alert = decision(patient_id, "worsening", "care_team", "urgent", on_call)
    for event in (text, alert, text):  # the repeat is a redelivery
        await publish(decisions, DECISIONS, event)

    found = await settled(stack, patient_id, 2)
    for n in found:
        assert set(n) == FIELDS
        assert n["status"] in STATUSES
        assert n["provider_sid"].startswith("SM")
        assert n["sent_at"].endswith("Z")
    by_kind = {n["kind"]: n for n in found}
    assert by_kind["reassurance"]["audience"] == "patient"
    assert by_kind["reassurance"]["to"] == phone
    assert "STOP" in by_kind["reassurance"]["body"]
    assert "Reply ACK" in by_kind["worsening"]["body"]
    sandbox = (await stack.sandbox.get("/sandbox/messages", params={"to": phone})).json()
    assert len(sandbox["messages"]) == 1

    page_id = by_kind["worsening"]["notification_id"]
    r = await stack.notifier.post(f"/v1/alerts/{page_id}/ack")
    assert r.status_code == 200
    assert r.json() == {"notification_id": page_id, "status": "acknowledged"}
    again = await stack.notifier.get(f"/v1/patients/{patient_id}/notifications")
    statuses = {n["kind"]: n["status"] for n in again.json()["notifications"]}
    assert statuses["worsening"] == "acknowledged"

    r = await stack.notifier.post(f"/v1/alerts/{by_kind['reassurance']['notification_id']}/ack")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "not_a_page"
    r = await stack.notifier.post(f"/v1/alerts/{uuid.uuid4()}/ack")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_unknown_patient_has_no_notifications(stack: Stack) -> None:
    r = await stack.notifier.get(f"/v1/patients/{random_patient_id()}/notifications")
    assert r.status_code == 200
    assert r.json() == {"notifications": []}


async def test_the_token_is_required(stack: Stack) -> None:
    bare = {"Authorization": "Bearer wrong-token-wrong-token"}
    r = await stack.notifier.get("/v1/patients/p-1/notifications", headers=bare)
    assert r.status_code == 401
    r = await stack.notifier.post(f"/v1/alerts/{uuid.uuid4()}/ack", headers=bare)
    assert r.status_code == 401


async def stack_today(stack: Stack) -> dt.date:
    """The stack's date: the simulated clock (read from the 409 a step back in time gets),
    else the wall clock."""
    r = await stack.ingest.post("/v1/clock", json={"now": "2000-01-01T00:00:00Z"})
    if r.status_code == 409:
        found = re.search(r"\d{4}-\d{2}-\d{2}", r.json()["error"]["message"])
        if found:
            return dt.date.fromisoformat(found.group(0))
    return dt.datetime.now(dt.UTC).date()


async def test_ack_by_sms_and_delivery_callbacks_end_to_end(stack: Stack, decisions: Any) -> None:
    """Sandbox → ingest → provider-events.v1 → notifier: the status callbacks mark the text
    delivered, and ``ACK <code>`` texted from the on-call phone acknowledges the page."""
    patient_id, phone, on_call = random_patient_id(), random_phone(), random_phone()
    enrolled = await stack.ingest.post(
        "/v1/patients",
        json={
            "patient_id": patient_id,
            "phone": phone,
            "timezone": "America/Chicago",
            "language": "en",
            "surgery_date": (await stack_today(stack)).isoformat(),
            "baseline_severity": 3,
            "care_team": {"on_call": on_call, "timezone": "America/Chicago"},
            "sms_consent": True,
        },
    )
    assert enrolled.status_code == 202, enrolled.text
    text = decision(patient_id, "reassurance", "patient", "routine", phone)
    alert = decision(patient_id, "red_flag", "care_team", "urgent", on_call)
    for event in (text, alert):
        await publish(decisions, DECISIONS, event)
    found = await settled(stack, patient_id, 2)
    body = next(n["body"] for n in found if n["kind"] == "red_flag")
    code = body.rsplit(" ", 1)[-1]

    r = await stack.sandbox.post("/sandbox/inbound", json={"from": on_call, "body": f"ACK {code}"})
    assert r.status_code == 200, r.text
    statuses: dict[str, str] = {}
    for _ in range(600):  # callbacks queue behind everything else the sandbox delivered
        r = await stack.notifier.get(f"/v1/patients/{patient_id}/notifications")
        statuses = {n["kind"]: n["status"] for n in r.json()["notifications"]}
        if statuses == {"reassurance": "delivered", "red_flag": "acknowledged"}:
            break
        await asyncio.sleep(0.1)
    assert statuses == {"reassurance": "delivered", "red_flag": "acknowledged"}
    # The audit trail names the page and the phone (by reference only, never the number).
    r = await stack.ingest.get("/v1/audit", params={"patient_id": patient_id, "limit": "1000"})
    assert r.status_code == 200, r.text
    assert on_call not in r.text
    assert phone not in r.text
    acks = [e for e in r.json()["events"] if e["action"] == "page.ack" and e["source"] == "sms"]
    assert [e["resource"] for e in acks] == [f"notification/{alert.event_id}"], acks
    assert acks[0]["actor"]["client"] == "sms"
    assert acks[0]["actor"]["sub"].startswith("sms:")


async def test_page_status_lists_only_care_team_alerts_and_refuses_bad_ids(stack: Stack) -> None:
    bad = await stack.notifier.get("/v1/alerts", params={"ids": "not-a-uuid"})
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"][0]["field"] == "ids"
    many = ",".join(str(uuid.uuid4()) for _ in range(201))
    assert (await stack.notifier.get("/v1/alerts", params={"ids": many})).status_code == 422
    unknown = await stack.notifier.get("/v1/alerts", params={"ids": str(uuid.uuid4())})
    assert unknown.status_code == 200
    assert unknown.json() == {"alerts": []}
    assert (
        await stack.notifier.get("/v1/alerts", headers={"Authorization": ""})
    ).status_code == 401
