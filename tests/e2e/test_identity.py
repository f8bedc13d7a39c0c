"""Identity and access on the running stack, with tokens from the running Keycloak: each
role and client × each endpoint × a patient of its own and of another care team, and the
tokens that must be refused (expired, another audience or issuer, ``alg: none``, tampered,
a disabled client's)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from shared.auth import Authenticator, OidcConfig, Unauthorized
from shared.events import SendNotification
from shared.kafka import create_producer, publish
from shared.kafka_security import default_bootstrap
from shared.topics import DECISIONS
from tests.decisions import LONG_AGO, decision
from tests.e2e.conftest import (
    Stack,
    daytime_zone,
    random_patient_id,
    random_phone,
    stack_now,
)
from tools import idp
from tools.client import eventually

pytestmark = pytest.mark.e2e


#: Who calls: demo users (password grant via hfs-cli) and integration clients.
PEOPLE = ("ana.clinician", "ben.approver", "olga.operator", "adam.admin")
CLIENTS = ("hfs-integration", "hfs-integration-team-a", "hfs-reader")
#: Each caller's care teams (None: every team) and what its roles and scopes open.
TEAMS: dict[str, set[str] | None] = {
    "ana.clinician": {"team-a"},
    "ben.approver": {"team-b"},
    "olga.operator": set(),
    "adam.admin": set(),
    "hfs-integration": None,
    "hfs-integration-team-a": {"team-a"},
    "hfs-reader": None,
}
OPENS: dict[str, set[str]] = {
    "ana.clinician": {"read", "enroll", "report", "ack"},
    "ben.approver": {"read", "enroll", "report", "ack"},
    "olga.operator": {"clock"},
    "adam.admin": {"clock", "audit"},
    "hfs-integration": {"read", "enroll", "report"},
    "hfs-integration-team-a": {"read", "enroll", "report"},
    "hfs-reader": {"read"},
}


def token_of(who: str) -> str:
    if who in CLIENTS:
        return idp.cached_client_token(who)
    return idp.cached_person_token(who)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Patient:
    patient_id: str
    team: str
    enrollment: dict[str, Any]
    page_id: str


def enrollment(patient_id: str, team: str, zone: str, today: dt.date) -> dict[str, Any]:
    return {
        "patient_id": patient_id,
        "phone": random_phone(),
        "timezone": zone,
        "language": "en",
        "surgery_date": today.isoformat(),
        "baseline_severity": 3,
        "care_team": {"on_call": random_phone(), "team": team},
        "sms_consent": False,
    }


def page(patient_id: str, team: str, to: str) -> SendNotification:
    return decision(
        patient_id,
        "worsening",
        at=LONG_AGO,
        key=f"{patient_id}:worsening:identity-e2e",
        audience="care_team",
        urgency="urgent",
        to=to,
        facts={"day": 40, "severity": 4, "baseline_severity": 3},
        rule="worsening.above_baseline",
        team=team,
    )


@pytest.fixture(scope="module")
async def patients() -> AsyncIterator[dict[str, Patient]]:
    """A patient of team-a and one of team-b, each enrolled, projected and with a page."""
    token = (idp.RUN / "api-token").read_text().strip()
    ports = {
        k: os.environ.get(f"{k.upper()}_PORT", d)
        for k, d in (("ingest", 8080), ("assessor", 8081), ("notifier", 8082))
    }
    async with (
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports['ingest']}", headers=bearer(token), timeout=15
        ) as ingest,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports['assessor']}", headers=bearer(token), timeout=15
        ) as assessor,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports['notifier']}", headers=bearer(token), timeout=15
        ) as notifier,
    ):
        stack = Stack(ingest, assessor, notifier, ingest, token)
        now = await stack_now(stack)
        zone = daytime_zone(now)
        producer = create_producer(default_bootstrap(), "e2e")
        await producer.start()
        out: dict[str, Patient] = {}
        try:
            for team in ("team-a", "team-b"):
                pid = random_patient_id()
                body = enrollment(pid, team, zone, now.date())
                r = await ingest.post("/v1/patients", json=body)
                assert r.status_code == 202, r.text
                event = page(pid, team, body["care_team"]["on_call"])
                await publish(producer, DECISIONS, event)
                out[team] = Patient(pid, team, body, str(event.event_id))
        finally:
            await producer.stop()

        async def all_there() -> bool:
            for p in out.values():
                rec = await assessor.get(f"/v1/patients/{p.patient_id}/recovery")
                notes = await notifier.get(f"/v1/patients/{p.patient_id}/notifications")
                if rec.status_code != 200 or notes.status_code != 200:
                    return False
                if p.page_id not in {n["notification_id"] for n in notes.json()["notifications"]}:
                    return False
            return True

        assert await eventually(all_there, within=60), "the identity test patients never showed up"
        yield out


@pytest.fixture(scope="module")
async def clients() -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    out = {
        name: httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{os.environ.get(var, port)}", timeout=15
        )
        for name, var, port in (
            ("ingest", "INGEST_PORT", 8080),
            ("assessor", "ASSESSOR_PORT", 8081),
            ("notifier", "NOTIFIER_PORT", 8082),
        )
    }
    yield out
    for c in out.values():
        await c.aclose()


async def call(
    clients: dict[str, httpx.AsyncClient], endpoint: str, patient: Patient, token: str
) -> httpx.Response:
    h = bearer(token)
    pid = patient.patient_id
    if endpoint == "read-recovery":
        return await clients["assessor"].get(f"/v1/patients/{pid}/recovery", headers=h)
    if endpoint == "read-notifications":
        return await clients["notifier"].get(f"/v1/patients/{pid}/notifications", headers=h)
    if endpoint == "ack":
        return await clients["notifier"].post(f"/v1/alerts/{patient.page_id}/ack", headers=h)
    if endpoint == "enroll":
        return await clients["ingest"].post("/v1/patients", json=patient.enrollment, headers=h)
    if endpoint == "report":
        clock = (await clients["ingest"].get("/v1/clock", headers=bearer(idp_dev()))).json()
        at = clock["now"] or dt.datetime.now(dt.UTC).isoformat()
        body = {"patient_id": pid, "occurred_at": at, "severity": 3, "source": "app"}
        return await clients["ingest"].post("/v1/symptom-reports", json=body, headers=h)
    raise AssertionError(endpoint)


def idp_dev() -> str:
    return (idp.RUN / "api-token").read_text().strip()


NEEDS = {
    "read-recovery": "read",
    "read-notifications": "read",
    "ack": "ack",
    "enroll": "enroll",
    "report": "report",
}


#: What each endpoint records in the audit trail: action and resource.
AUDITED = {
    "read-recovery": ("patient.read", "recovery"),
    "read-notifications": ("patient.read", "notifications"),
    "ack": ("page.ack", "notification/"),
    "enroll": ("patient.write", "enrollment"),
    "report": ("report.write", "symptom-report"),
}


async def audit_of(clients: dict[str, httpx.AsyncClient], **filters: str) -> list[dict[str, Any]]:
    r = await clients["ingest"].get(
        "/v1/audit", params={**filters, "limit": "1000"}, headers=bearer(token_of("adam.admin"))
    )
    assert r.status_code == 200, r.text
    assert "+1555" not in r.text  # no phone number, ever
    events: list[dict[str, Any]] = r.json()["events"]
    return events


@pytest.mark.parametrize("endpoint", list(NEEDS))
@pytest.mark.parametrize("who", PEOPLE + CLIENTS)
async def test_role_and_team_matrix(
    who: str, endpoint: str, patients: dict[str, Patient], clients: dict[str, httpx.AsyncClient]
) -> None:
    """Each answer, and the audit row it leaves (allowed or denied, by whom, on what)."""
    token = token_of(who)
    sub = jwt.decode(token, options={"verify_signature": False})["sub"]
    action, resource = AUDITED[endpoint]
    for team, patient in patients.items():
        teams = TEAMS[who]
        allowed = NEEDS[endpoint] in OPENS[who] and (teams is None or team in teams)
        r = await call(clients, endpoint, patient, token)
        if allowed:
            assert r.status_code in (200, 202), (who, endpoint, team, r.text)
        else:
            assert r.status_code == 403, (who, endpoint, team, r.text)
            assert r.json()["error"]["code"] == "forbidden"
            assert patient.patient_id not in r.text
        rows = await audit_of(clients, patient_id=patient.patient_id, actor=sub)
        assert any(
            e["action"] == action
            and e["resource"].startswith(resource)
            and e["outcome"] == ("allowed" if allowed else "denied")
            and e["actor"]["client"] == (who if who in CLIENTS else "hfs-cli")
            for e in rows
        ), (who, endpoint, team, rows)


async def test_only_an_admin_reads_the_audit_and_it_pages_by_cursor(
    patients: dict[str, Patient], clients: dict[str, httpx.AsyncClient]
) -> None:
    a = patients["team-a"]
    for who in ("olga.operator", "ana.clinician", "hfs-integration"):
        r = await clients["ingest"].get("/v1/audit", headers=bearer(token_of(who)))
        assert r.status_code == 403, (who, r.text)
    await call(clients, "read-recovery", a, token_of("ana.clinician"))
    await call(clients, "read-recovery", a, token_of("ana.clinician"))
    admin = bearer(token_of("adam.admin"))
    ana = jwt.decode(token_of("ana.clinician"), options={"verify_signature": False})["sub"]
    seen: list[dict[str, Any]] = []
    # By actor too: the admin's own reads of this patient's trail are recorded as well.
    params: dict[str, str] = {"patient_id": a.patient_id, "actor": ana, "limit": "1"}
    for _ in range(100):
        r = await clients["ingest"].get("/v1/audit", params=params, headers=admin)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["events"]) <= 1
        seen += body["events"]
        if body["next"] is None:
            break
        params["cursor"] = body["next"]
    assert body["next"] is None
    assert seen == await audit_of(clients, patient_id=a.patient_id, actor=ana)
    reads = [e for e in seen if e["actor"]["name"] == "Ana Alvarez" and e["resource"] == "recovery"]
    assert len(reads) >= 2
    assert {"at", "actor", "action", "patient_id", "resource", "outcome", "source"} <= set(seen[0])
    r = await clients["ingest"].get("/v1/audit", params={"cursor": "bogus"}, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["fields"][0]["field"] == "cursor"


async def test_a_team_a_clinician_cannot_read_ack_or_enroll_a_team_b_patient(
    patients: dict[str, Patient], clients: dict[str, httpx.AsyncClient]
) -> None:
    ana = token_of("ana.clinician")
    b = patients["team-b"]
    for endpoint in ("read-recovery", "read-notifications", "ack", "enroll", "report"):
        r = await call(clients, endpoint, b, ana)
        assert r.status_code == 403, (endpoint, r.text)
    # Nor move a patient of team-b into team-a, nor enroll a new patient into team-b.
    moved = {**b.enrollment, "care_team": {**b.enrollment["care_team"], "team": "team-a"}}
    r = await clients["ingest"].post("/v1/patients", json=moved, headers=bearer(ana))
    assert r.status_code == 403, r.text
    fresh = {**b.enrollment, "patient_id": random_patient_id(), "phone": random_phone()}
    r = await clients["ingest"].post("/v1/patients", json=fresh, headers=bearer(ana))
    assert r.status_code == 403, r.text


async def test_an_unknown_patient_is_403_for_a_team_and_404_for_every_team(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    ghost = random_patient_id()
    r = await clients["assessor"].get(
        f"/v1/patients/{ghost}/recovery", headers=bearer(token_of("ana.clinician"))
    )
    assert r.status_code == 403, r.text
    r = await clients["assessor"].get(
        f"/v1/patients/{ghost}/recovery", headers=bearer(token_of("hfs-reader"))
    )
    assert r.status_code == 404, r.text
    r = await clients["notifier"].post(
        f"/v1/alerts/{uuid.uuid4()}/ack", headers=bearer(token_of("ana.clinician"))
    )
    assert r.status_code == 403, r.text


# --- tokens that must be refused ------------------------------------------------------


def _b64(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def forged_tokens() -> dict[str, str]:
    real = token_of("hfs-reader")
    header_b64, _payload, signature = real.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=="))
    claims = jwt.decode(real, options={"verify_signature": False})
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "tampered": f"{header_b64}.{_b64({**claims, 'teams': '*', 'sub': 'x'})}.{signature}",
        "HS256 with the public key id": jwt.encode(
            claims, "secret" * 8, algorithm="HS256", headers={"kid": header["kid"]}
        ),
        "unsigned garbage": "a.b.c",
        "another audience": idp.client_token("hfs-test-other-audience"),
        "another issuer": _master_token(),
    }


def _master_token() -> str:
    """A genuine Keycloak token from another realm (master): not our issuer's."""
    url = idp.issuer().rsplit("/realms/", 1)[0] + "/realms/master/protocol/openid-connect/token"
    r = httpx.post(
        url,
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": "admin",
            "password": idp.admin_password(),
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def test_invalid_tokens_are_401_with_www_authenticate(
    patients: dict[str, Patient], clients: dict[str, httpx.AsyncClient]
) -> None:
    a = patients["team-a"]
    for name, token in forged_tokens().items():
        for endpoint in ("read-recovery", "read-notifications", "enroll"):
            r = await call(clients, endpoint, a, token)
            assert r.status_code == 401, (name, endpoint, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith('Bearer realm="hfs"'), name
    r = await clients["assessor"].get(f"/v1/patients/{a.patient_id}/recovery")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="hfs"'


def authenticator(**overrides: Any) -> Authenticator:
    config = OidcConfig(issuer=idp.issuer(), audience="hfs-api", **overrides)
    return Authenticator(config)


async def test_an_expired_token_is_refused() -> None:
    """A Keycloak token that lives 1 s, once expired: refused with no leeway, accepted with
    a leeway that covers it (so the expiry, not the signature, is what refuses it). The
    services allow 30 s of clock skew (tests/unit/test_auth.py checks that bound)."""
    token = idp.client_token("hfs-test-short-lived")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 1
    wait = claims["exp"] + 1.5 - dt.datetime.now(dt.UTC).timestamp()
    await asyncio.sleep(max(0.0, wait))
    with pytest.raises(Unauthorized, match="expired"):
        await authenticator(leeway_s=0).authenticate(f"Bearer {token}")
    lenient = await authenticator(leeway_s=120).authenticate(f"Bearer {token}")
    assert lenient.client == "hfs-test-short-lived"


async def test_the_issuer_and_audience_are_checked() -> None:
    token = f"Bearer {token_of('hfs-reader')}"
    certs = idp.issuer() + "/protocol/openid-connect/certs"
    other_issuer = Authenticator(
        OidcConfig(issuer=idp.issuer() + "-other", audience="hfs-api", jwks_url=certs)
    )
    with pytest.raises(Unauthorized, match="issuer"):
        await other_issuer.authenticate(token)
    other_audience = Authenticator(OidcConfig(issuer=idp.issuer(), audience="another-api"))
    with pytest.raises(Unauthorized, match="audience"):
        await other_audience.authenticate(token)
    assert (await authenticator().authenticate(token)).client == "hfs-reader"


def _admin(path: str, method: str = "GET", body: Any = None) -> httpx.Response:
    token = _master_token()
    base = idp.issuer().rsplit("/realms/", 1)[0] + "/admin/realms/hfs"
    return httpx.request(
        method, base + path, json=body, timeout=30, headers={"Authorization": f"Bearer {token}"}
    )


async def test_a_disabled_client_gets_no_more_tokens_and_old_ones_expire_within_5_minutes(
    patients: dict[str, Patient], clients: dict[str, httpx.AsyncClient]
) -> None:
    """Revoking an integration = disabling its client in the IdP. Access tokens are checked
    offline (JWKS), so one already issued stays valid until it expires: at most 5 minutes."""
    before = idp.client_token("hfs-test-revocable")
    claims = jwt.decode(before, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 300
    found = _admin("/clients?clientId=hfs-test-revocable").json()
    client_uuid = found[0]["id"]
    assert _admin(f"/clients/{client_uuid}", "PUT", {**found[0], "enabled": False}).is_success
    try:
        with pytest.raises(PermissionError):
            idp.client_token("hfs-test-revocable")
    finally:
        assert _admin(f"/clients/{client_uuid}", "PUT", {**found[0], "enabled": True}).is_success
    assert idp.client_token("hfs-test-revocable")
