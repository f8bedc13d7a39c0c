"""Erasure, proved by search: a patient's unique phone and note are never in plain text in
Kafka's log on disk, and after ``DELETE /v1/patients/{id}`` they are nowhere readable: not
in Kafka's segments, a ``pg_dump`` of every schema, the services' logs, the SMS sandbox's
store or the assessor's data dir; every API answers 404 for the patient."""

from __future__ import annotations

import asyncio
import base64
import glob
import json
import os
import secrets
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.conftest import ROOT, Stack, random_patient_id
from tests.e2e.daytime import enroll
from tools import idp
from tools.client import eventually

RUN = ROOT / ".run"


def needles(value: str) -> list[bytes]:
    """The readable forms a value can take: as is, URL-encoded, and (a phone) its digits."""
    forms = {value, quote(value, safe=""), value.lstrip("+")}
    return [f.encode() for f in forms]


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def found_in_files(paths: list[Path], values: list[str]) -> list[str]:
    hits = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue  # a segment deleted by retention while we looked
        hits += [f"{v} in {path}" for v in values for n in needles(v) if n in data]
    return hits


def pg_dump() -> bytes:
    binary = shutil.which("pg_dump") or max(
        glob.glob("/usr/lib/postgresql/*/bin/pg_dump"), default=None
    )
    if binary is None:
        pytest.fail("pg_dump not found (PostgreSQL's client tools are part of the stack)")
    url = os.environ.get(
        "DATABASE_URL",
        f"postgresql://recovery:recovery@127.0.0.1:{os.environ.get('PG_PORT', 55432)}/recovery",
    )
    done = subprocess.run(
        [binary, "--no-owner", "--no-privileges", url], capture_output=True, check=True
    )
    return done.stdout


def kafka_segments() -> list[Path]:
    return files_under(RUN / "kafka" / "data")


def assessor_dir() -> Path:
    return Path(os.environ.get("ASSESSOR_DATA_DIR", RUN / "assessor"))


async def test_an_erased_patient_is_found_nowhere_readable(stack: Stack) -> None:
    note_token = "zq" + secrets.token_hex(8)  # in an SMS reply (a red flag)
    api_note = "yx" + secrets.token_hex(8)  # in an app report
    patient_id, phone, now = await enroll(stack, days_since_surgery=5)
    values = [phone, note_token, api_note]
    r = await stack.ingest.post(
        "/v1/symptom-reports",
        json={
            "event_id": str(uuid.uuid4()),
            "patient_id": patient_id,
            "occurred_at": now.isoformat(),
            "severity": 2,
            "note": f"a little better {api_note}",
            "source": "app",
        },
    )
    assert r.status_code == 202, r.text
    r = await stack.sandbox.post(
        "/sandbox/inbound", json={"from": phone, "body": f"my face is drooping {note_token}"}
    )
    assert r.status_code < 300, r.text

    async def notified() -> list[dict[str, Any]] | None:
        got = await stack.notifier.get(f"/v1/patients/{patient_id}/notifications")
        found = got.json()["notifications"]
        alert = [n for n in found if n["kind"] == "red_flag" and n["audience"] == "care_team"]
        texted = [n for n in found if n["audience"] == "patient" and n["provider_sid"]]
        return found if alert and texted else None

    # The APIs show the patient's data (the phone the texts go to, the alert raised).
    notes = await eventually(notified, within=60)
    assert phone in {n["to"] for n in notes}
    recovery = await stack.assessor.get(f"/v1/patients/{patient_id}/recovery")
    assert recovery.status_code == 200
    assert any(a["kind"] == "red_flag" for a in recovery.json()["alerts"])
    messages = (await stack.sandbox.get("/sandbox/messages")).json()["messages"]
    assert any(m["from"] == phone and note_token in m["body"] for m in messages)

    # Kafka's log on disk never holds them in plain text; the search does find what is
    # there (the registry's phone, before the erasure).
    assert found_in_files(kafka_segments(), values) == []
    assert phone.encode() in pg_dump()

    erased = await stack.ingest.delete(f"/v1/patients/{patient_id}")
    assert erased.status_code == 202, erased.text
    erasure_id = erased.json()["event_id"]
    again = await stack.ingest.delete(f"/v1/patients/{patient_id}")  # idempotent
    assert again.status_code == 202
    assert again.json()["event_id"] == erasure_id

    async def done() -> dict[str, Any] | None:
        got = await stack.ingest.get(f"/v1/patients/{patient_id}/erasure")
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body if body["status"] == "done" else None

    status = await eventually(done, within=60)
    assert status["erasure_id"] == erasure_id
    assert {"ingest", "assessor", "notifier", "provider"} <= set(status["stores"])
    assert all(s["outcome"] == "done" for s in status["stores"].values())
    assert status["stores"]["provider"]["removed"] >= 2  # the reply and what was sent

    # Every API answers 404 for the patient.
    assert (await stack.assessor.get(f"/v1/patients/{patient_id}/recovery")).status_code == 404
    gone = await stack.notifier.get(f"/v1/patients/{patient_id}/notifications")
    assert gone.status_code == 404
    report = await stack.ingest.post(
        "/v1/symptom-reports",
        json={"patient_id": patient_id, "occurred_at": now.isoformat(), "severity": 1},
    )
    assert report.status_code == 404
    assert (await stack.ingest.get(f"/internal/v1/keys/{patient_id}")).status_code == 404

    # The audit trail keeps its (PHI-free) rows and records the erasure.
    # Every page of the patient's trail (the polls above are audited reads too: on a slow
    # machine they fill more than one page).
    actions: set[str] = set()
    params = {"patient_id": patient_id, "limit": "1000"}
    while True:
        page = (await stack.ingest.get("/v1/audit", params=params)).json()
        actions |= {e["action"] for e in page["events"]}
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert "patient.erase" in actions

    # Searched everywhere they could be: found nowhere readable.
    await asyncio.sleep(1.0)  # let the last log lines reach their files
    dump = pg_dump()
    assert [v for v in values for n in needles(v) if n in dump] == []
    sandbox = (await stack.sandbox.get("/sandbox/messages")).content
    assert [v for v in values for n in needles(v) if n in sandbox] == []
    page = (await stack.sandbox.get("/")).content
    assert [v for v in values for n in needles(v) if n in page] == []
    assert found_in_files(kafka_segments(), values) == []
    assert found_in_files(files_under(RUN / "logs"), values) == []
    assert found_in_files(files_under(assessor_dir()), values) == []


async def test_erasing_an_unknown_patient_is_404_and_needs_admin(stack: Stack) -> None:
    r = await stack.ingest.delete(f"/v1/patients/{random_patient_id()}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_patient"
    r = await stack.ingest.get(f"/v1/patients/{random_patient_id()}/erasure")
    assert r.status_code == 404
    r = await stack.ingest.delete(
        f"/v1/patients/{random_patient_id()}", headers={"Authorization": ""}
    )
    assert r.status_code == 401


async def test_only_the_services_own_clients_fetch_data_keys(stack: Stack) -> None:
    """The key endpoint takes the services' client-credentials tokens (KEY_CLIENTS), not
    an integration's or a person's, whatever their scopes or roles."""
    patient_id, _, _ = await enroll(stack, days_since_surgery=0)
    path = f"/internal/v1/keys/{patient_id}"
    for token in (idp.client_token("hfs-integration"), idp.person_token("adam.admin")):
        refused = await stack.ingest.get(path, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403, refused.text
    secrets_file = RUN / "keycloak" / "service-clients.json"
    service = idp.client_token("hfs-notifier", json.loads(secrets_file.read_text())["hfs-notifier"])
    got = await stack.ingest.get(path, headers={"Authorization": f"Bearer {service}"})
    assert got.status_code == 200, got.text
    assert len(base64.b64decode(got.json()["key"])) == 32
    unknown = await stack.ingest.get(
        f"/internal/v1/keys/{random_patient_id()}", headers={"Authorization": f"Bearer {service}"}
    )
    assert unknown.status_code == 404
    # Many at once (a consumer's batch): the unknown ones are left out.
    many = await stack.ingest.post(
        "/internal/v1/keys",
        json={"patient_ids": [patient_id, random_patient_id()]},
        headers={"Authorization": f"Bearer {service}"},
    )
    assert many.status_code == 200, many.text
    assert many.json()["keys"] == {patient_id: got.json()["key"]}
    refused = await stack.ingest.post(
        "/internal/v1/keys",
        json={"patient_ids": [patient_id]},
        headers={"Authorization": f"Bearer {idp.client_token('hfs-integration')}"},
    )
    assert refused.status_code == 403
