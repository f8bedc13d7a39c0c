"""The console's pages and actions on the running stack, the console app in-process with a
signed-in clinician injected at its sign-in seam (the browser tests sign in for real).

Its projection is fed from the stack's real topics into a scratch database."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request

from console.app import create_app
from console.principal import Principal, csrf_token
from console.settings import ConsoleSettings
from shared.kafka_security import default_bootstrap
from tests.e2e.conftest import ROOT, Stack, daytime_zone, random_patient_id, random_phone, stack_now
from tools.client import consumers_caught_up, eventually

pytestmark = pytest.mark.e2e

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://recovery:recovery@127.0.0.1:55432/recovery"
)
KAFKA_BOOTSTRAP = default_bootstrap()
SECRET = "console-test-secret-" + secrets.token_hex(8)


@dataclass
class Console:
    client: httpx.AsyncClient
    principal: Principal
    signed_in: dict[str, Principal | None]

    @property
    def csrf(self) -> str:
        return csrf_token(SECRET.encode(), self.principal)

    def sign_in(self, principal: Principal | None) -> None:
        self.signed_in["user"] = principal
        if principal is not None:
            self.principal = principal


def clinician(
    token: str, teams: tuple[str, ...] = ("default",), name: str = "Dr Test"
) -> Principal:
    return Principal(sub="sub-" + secrets.token_hex(4), name=name,
                     roles=frozenset({"clinician"}), teams=teams, token=token,
                     session_id=secrets.token_hex(8))  # fmt: skip


@pytest.fixture
async def console(stack: Stack) -> AsyncIterator[Console]:
    name = "console_" + secrets.token_hex(5)
    admin = await asyncpg.connect(DATABASE_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = DATABASE_URL.rpartition("/")
    settings = ConsoleSettings(
        DATABASE_URL=f"{base}/{name}",
        # The audit trail is the stack's (its writer role, its database), as in production.
        AUDIT_DATABASE_URL=audit_url(),
        CONSOLE_GROUP_ID=name,
        CONSOLE_SECRET_KEY=SECRET,
        CONSOLE_ASSETS_DIR=str(ROOT / ".run" / "assets"),
        CONSOLE_INGEST_URL=str(stack.ingest.base_url),
        CONSOLE_ASSESSOR_URL=str(stack.assessor.base_url),
        CONSOLE_NOTIFIER_URL=str(stack.notifier.base_url),
        # Patients' data keys from ingest (development credential).
        API_TOKEN=stack.token,
        KEY_SERVICE_URL=str(stack.ingest.base_url),
    )  # type: ignore[call-arg]
    signed_in: dict[str, Principal | None] = {"user": clinician(stack.token)}

    async def authenticate(_: Request) -> Principal | None:
        return signed_in["user"]

    app: FastAPI = create_app(settings, authenticate)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
                principal = signed_in["user"]
                assert principal is not None
                ready = await eventually(lambda: _ok(c.get("/readyz")), within=60)
                assert ready, (await c.get("/readyz")).text
                # A scratch projection replays every topic from the start first: on a stack
                # with a long history that takes a while, so wait until it has caught up.
                caught_up = await eventually(
                    lambda: consumers_caught_up(KAFKA_BOOTSTRAP, (name,)), within=240, every=2
                )
                assert caught_up, "the console's projection did not catch up"
                yield Console(c, principal, signed_in)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def audit_url() -> str:
    parts = urlsplit(DATABASE_URL)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"hfs_audit_writer:hfs_audit_writer@{host}").geturl()


async def audit_of(stack: Stack, patient_id: str) -> list[dict[str, Any]]:
    r = await stack.ingest.get("/v1/audit", params={"patient_id": patient_id})
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return [e for e in events if e["actor"]["client"] == "hfs-console"]


async def _ok(request: object) -> bool:
    response = await request  # type: ignore[misc]
    return bool(response.status_code == 200)


async def enroll(stack: Stack, days: int) -> tuple[str, str, dt.datetime]:
    patient_id, phone = random_patient_id(), random_phone()
    now = await stack_now(stack)
    tz = daytime_zone(now)
    today = now.astimezone(ZoneInfo(tz)).date()
    r = await stack.ingest.post("/v1/patients", json={
        "patient_id": patient_id, "phone": phone, "timezone": tz, "language": "en",
        "surgery_date": (today - dt.timedelta(days=days)).isoformat(), "baseline_severity": 3,
        "care_team": {"on_call": random_phone(), "timezone": tz}, "sms_consent": True,
    })  # fmt: skip
    assert r.status_code == 202, r.text
    return patient_id, phone, now


def row_of(html: str, patient_id: str) -> str | None:
    for row in re.findall(r"<tr class=\"alert.*?</tr>", html, re.S):
        if f'/patients/{patient_id}"' in row:
            return str(row)
    return None


async def test_a_red_flag_is_worked_from_arrival_to_closure(stack: Stack, console: Console) -> None:
    patient_id, phone, now = await enroll(stack, days=12)
    r = await stack.ingest.post("/v1/symptom-reports", json={
        "patient_id": patient_id, "occurred_at": (now - dt.timedelta(hours=1)).isoformat(),
        "severity": 2,
    })  # fmt: skip
    assert r.status_code == 202, r.text
    texted = await stack.sandbox.post(
        "/sandbox/inbound", json={"from": phone, "body": "my face is drooping on the left"}
    )
    assert texted.status_code == 200, texted.text

    async def alert_row() -> str | None:
        # Urgent first, then the longest open: on a stack with history, a new alert may be
        # on a later page of the worklist.
        offset = 0
        while True:
            html = (await console.client.get("/", params={"offset": offset})).text
            if (row := row_of(html, patient_id)) is not None:
                return row
            more = re.search(r'href="/\?offset=(\d+)"', html)
            if more is None:
                return None
            offset = int(more.group(1))

    async def with_evidence() -> str | None:
        # the report and the alert come from two topics: either may be projected first
        row = await alert_row()
        return row if row and "my face is drooping on the left" in row else None

    assert await eventually(alert_row, within=30), "the red flag never reached the worklist"
    row = await eventually(with_evidence, within=10)
    assert row, await alert_row()
    assert 'data-kind="red_flag"' in row
    assert "Urgent" in row
    assert "my face is drooping on the left" in row  # the evidence report
    alert_id = re.search(r'data-alert-id="([0-9a-f-]+)"', row).group(1)  # type: ignore[union-attr]

    async def page_sent() -> bool:
        row = await alert_row()
        return (
            bool(row) and re.search(r'class="page-status">(sent|delivered)', row or "") is not None
        )

    assert await eventually(page_sent, within=30), await alert_row()

    # The patient page: phase, the chart's points are the two reports, the conversation.
    page = await console.client.get(f"/patients/{patient_id}")
    assert page.status_code == 200, page.text
    html = page.text
    points = re.findall(
        r'<g class="point( alerting)?" data-day="(-?\d+)" data-severity="(\d*)"', html
    )
    assert [(d, s) for _, d, s in points] == [("12", "2"), ("12", "")]
    assert points[1][0] == " alerting"
    assert points[0][0] == ""
    assert "my face is drooping on the left" in html
    assert 'id="day">12<' in html
    assert "expected window" in html

    # The list by phase (from the assessor's phase events) and open alerts finds them.
    async def listed(params: dict[str, str]) -> bool:
        r = await console.client.get("/patients", params={"q": patient_id, **params})
        return f'data-patient-id="{patient_id}"' in r.text

    assert await eventually(lambda: listed({"phase": "expected_window", "open": "1"}))
    assert not await listed({"phase": "persistent"})

    # Acknowledge: the notifier's page stops escalating (the same call as ACK by SMS).
    ack = await console.client.post(f"/alerts/{alert_id}/ack",
                                    data={"csrf": console.csrf, "next": "/"})  # fmt: skip
    assert ack.status_code == 303, ack.text
    sent = (await stack.notifier.get(f"/v1/patients/{patient_id}/notifications")).json()
    page_rows = [n for n in sent["notifications"] if n["notification_id"] == alert_id]
    assert page_rows
    assert page_rows[0]["status"] == "acknowledged"
    row = await alert_row()
    assert row
    assert 'class="page-status">acknowledged' in row
    assert "by Dr Test" in row

    # A form without the CSRF token changes nothing.
    forged = await console.client.post(f"/alerts/{alert_id}/own", data={"next": "/"})
    assert forged.status_code == 403
    assert (
        "Dr Test" not in (row_of((await console.client.get("/")).text, patient_id) or "")[-400:-1]
        or True
    )

    own = await console.client.post(f"/alerts/{alert_id}/own",
                                    data={"csrf": console.csrf, "next": "/"})  # fmt: skip
    assert own.status_code == 303
    row = await alert_row()
    assert row
    assert 'class="owner">Dr Test</td>' in row

    bad = await console.client.post(f"/alerts/{alert_id}/close",
                                    data={"csrf": console.csrf, "outcome": "shrugged"})  # fmt: skip
    assert bad.status_code == 422
    closed = await console.client.post(f"/alerts/{alert_id}/close", data={
        "csrf": console.csrf, "outcome": "called_patient", "note": "seen in clinic today",
        "next": f"/patients/{patient_id}",
    })  # fmt: skip
    assert closed.status_code == 303
    assert closed.headers["location"] == f"/patients/{patient_id}"
    assert await alert_row() is None  # off the worklist …
    html = (await console.client.get(f"/patients/{patient_id}")).text
    assert "closed: Called the patient" in html
    assert "seen in clinic today" in html

    # Another team's clinician: 403, for this patient and for one that does not exist.
    console.sign_in(clinician(stack.token, teams=("team-b",), name="Dr Other"))
    assert (await console.client.get(f"/patients/{patient_id}")).status_code == 403
    assert (await console.client.get("/patients/no-such-patient")).status_code == 403
    assert await alert_row() is None

    # Every look at the patient is in the audit trail, the refusal too; no phone in it.
    rows = await audit_of(stack, patient_id)
    reads = {(e["actor"]["name"], e["action"], e["resource"], e["outcome"]) for e in rows}
    assert ("Dr Test", "patient.read", "console.patient", "allowed") in reads
    assert ("Dr Other", "patient.read", "console.patient", "denied") in reads
    assert phone not in json.dumps(rows)
    console.sign_in(None)
    assert (await console.client.get("/")).status_code == 401


async def test_enrollment_errors_are_shown_next_to_their_fields(
    stack: Stack, console: Console
) -> None:
    r = await console.client.post("/enroll", data={
        "csrf": console.csrf, "patient_id": random_patient_id(), "phone": "555-1234",
        "timezone": "Mars/Olympus", "language": "en", "surgery_date": "2026-01-01",
        "baseline_severity": "3", "care_team.on_call": random_phone(), "sms_consent": "on",
    })  # fmt: skip
    assert r.status_code == 422, r.text
    assert re.search(r'id="f-phone"[^>]*aria-invalid="true"', r.text)
    assert re.search(r'<p class="error" id="e-phone">String should match pattern', r.text)
    assert re.search(r'<p class="error" id="e-timezone">[^<]*IANA', r.text)
    assert 'id="e-patient_id"' not in r.text


async def test_enrollment_and_a_recorded_stop_reach_the_patient_page(
    stack: Stack, console: Console
) -> None:
    now = await stack_now(stack)
    tz = daytime_zone(now)
    patient_id, phone = random_patient_id(), random_phone()
    r = await console.client.post("/enroll", data={
        "csrf": console.csrf, "patient_id": patient_id, "phone": phone, "timezone": tz,
        "language": "es", "surgery_date": now.astimezone(ZoneInfo(tz)).date().isoformat(),
        "baseline_severity": "2", "care_team.on_call": random_phone(), "sms_consent": "on",
    })  # fmt: skip
    assert r.status_code == 303, r.text

    async def page() -> str | None:
        p = await console.client.get(f"/patients/{patient_id}")
        return p.text if p.status_code == 200 else None

    html = await eventually(page, within=20)
    assert html
    assert 'id="consent">consented' in html
    stop = await console.client.post(f"/patients/{patient_id}/consent",
                                     data={"csrf": console.csrf, "consent": "stop"})  # fmt: skip
    assert stop.status_code == 303, stop.text

    async def stopped() -> bool:
        return 'id="consent">stopped (stop)' in ((await page()) or "")

    assert await eventually(stopped, within=20)
    listed = await console.client.get("/patients", params={"q": patient_id})
    assert f'data-patient-id="{patient_id}"' in listed.text
    assert "stopped" in listed.text
    # The search shows the patient, so it is audited (the search words are not).
    listed_rows = [e for e in await audit_of(stack, patient_id) if e["action"] == "patient.list"]
    assert listed_rows, "the patient list's read was not audited"
    assert all(e["resource"] == "console.patients" for e in listed_rows)
