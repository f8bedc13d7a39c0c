"""A page nobody acknowledges by text is called, end to end on the running stack (simulated
clock): decisions.v1 → notifier → the sandbox's Calls resource (through the twilio SDK); a
keypress on the call → ingest's signed voice webhook → provider-events.v1 → the notifier
acknowledges the alert."""

from __future__ import annotations

import asyncio
import datetime as dt
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

LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)  # due whatever the stack's clock says


@pytest.fixture
async def decisions() -> AsyncIterator[Any]:
    producer = create_producer(default_bootstrap(), "e2e-call")
    await producer.start()
    yield producer
    await producer.stop()


def urgent_page(patient_id: str, on_call: str, backup: str) -> SendNotification:
    key = f"{patient_id}:red_flag:e2e-call"
    return SendNotification.model_validate(
        {
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
            "occurred_at": LONG_AGO,
            "recorded_at": LONG_AGO,
            "patient_id": patient_id,
            "source": "assessor",
            "payload": {
                "dedupe_key": key,
                "kind": "red_flag",
                "audience": "care_team",
                "urgency": "urgent",
                "to": on_call,
                "backup_to": backup,
                "language": "en",
                "timezone": "America/Chicago",
                "due_at": LONG_AGO,
                "facts": {"day": 3, "evidence": "facial droop"},
                "rule": "red_flag.facial_weakness",
            },
        }
    )


async def until(check: Any, what: str, within: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await check()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.2)


async def test_an_unacknowledged_page_is_called_and_a_keypress_acknowledges_it(
    stack: Stack, decisions: Any
) -> None:
    clock = (await stack.ingest.get("/v1/clock")).json()
    assert clock["simulated"], "this test moves the clock: run the stack with SIMULATED_CLOCK=1"
    patient_id, on_call, backup = random_patient_id(), random_phone(), random_phone()
    await publish(decisions, DECISIONS, urgent_page(patient_id, on_call, backup))

    async def notifications() -> list[dict[str, Any]]:
        r = await stack.notifier.get(f"/v1/patients/{patient_id}/notifications")
        return list(r.json()["notifications"])

    async def page_sent() -> bool:
        return any(n["status"] in ("sent", "delivered") for n in await notifications())

    await until(page_sent, "the page was texted")
    now = dt.datetime.fromisoformat((await stack.ingest.get("/v1/clock")).json()["now"])
    moved = await stack.ingest.post(
        "/v1/clock", json={"now": (now + dt.timedelta(minutes=16)).isoformat()}
    )
    assert moved.status_code == 202, moved.text

    async def call() -> dict[str, Any] | None:
        r = await stack.sandbox.get("/sandbox/calls", params={"to": on_call})
        calls = [c for c in r.json()["calls"] if c["status"] != "queued"]
        return calls[0] if calls else None

    placed = await until(call, "the on-call phone was called")
    assert "possible complication reported" in placed["said"]
    assert "Press 1 to acknowledge." in placed["said"]

    press = f"/sandbox/calls/{placed['sid']}/press"
    pressed = await stack.sandbox.post(press, json={"digits": "1"})
    assert pressed.status_code == 200, pressed.text
    assert pressed.json()["status"] == 200
    assert "Acknowledged" in pressed.json()["twiml"]

    async def acknowledged() -> bool:
        rows = await notifications()
        root = next(n for n in rows if not n["dedupe_key"].count(":esc"))
        return bool(root["status"] == "acknowledged")

    await until(acknowledged, "the keypress acknowledged the page")
