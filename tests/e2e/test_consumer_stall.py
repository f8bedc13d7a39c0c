"""A stall longer than a consumer group's session: the notifier is paused (SIGSTOP) past its
session timeout, so the group moves on without it and its next offset commit is refused.
It must carry on — ready again, and delivering — rather than lose a loop."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from typing import Any

from tests.e2e.conftest import Stack
from tests.e2e.daytime import enroll
from tools.client import ROOT, eventually

SESSION_TIMEOUT_S = 10  # aiokafka's default session_timeout_ms, which the notifier keeps


async def test_notifier_survives_a_stall_past_its_group_session(stack: Stack) -> None:
    pid = int((ROOT / ".run" / "pids" / "notifier.pid").read_text().strip())
    patient_id, phone, now = await enroll(stack, days_since_surgery=5)
    os.kill(pid, signal.SIGSTOP)
    try:
        # Reports arrive while it is stopped: its consent consumer has records to commit.
        report = {
            "event_id": str(uuid.uuid4()),
            "patient_id": patient_id,
            "occurred_at": now.isoformat(),
            "severity": 2,
            "source": "app",
        }
        assert (await stack.ingest.post("/v1/symptom-reports", json=report)).status_code == 202
        await asyncio.sleep(SESSION_TIMEOUT_S + 4)
    finally:
        os.kill(pid, signal.SIGCONT)

    async def ready() -> bool:
        return (await stack.notifier.get("/readyz")).status_code == 200

    assert await eventually(ready, within=60, every=1)

    async def texts() -> list[dict[str, Any]]:
        r = await stack.sandbox.get("/sandbox/messages", params={"to": phone})
        return [m for m in r.json()["messages"] if m["to"] == phone]

    received = await eventually(texts, within=60)
    assert len(received) == 1
    await asyncio.sleep(3)
    assert len(await texts()) == 1  # redelivered after the refused commit, still sent once
    assert await ready()  # and still ready: no loop died on the refused commit
