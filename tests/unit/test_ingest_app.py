"""The ingest app without infrastructure: Kafka and PostgreSQL on closed ports.

Everything that needs them answers 503 with the contract's error body (nothing can have
been published); everything decided before them (auth, body size, JSON, fields, Twilio
signatures) answers as it would on the real stack.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from twilio.request_validator import RequestValidator

from ingest.app import create_app
from ingest.settings import IngestSettings
from shared.logs import DEV_LOG_REF_KEY
from shared.settings import DEV_API_TOKEN, DEV_MASTER_KEY

TOKEN = "unit-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC = "https://recovery.example.org"
TWILIO_TOKEN = "unit-twilio-token"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def make_settings(**overrides: Any) -> IngestSettings:
    port = closed_port()
    values: dict[str, Any] = {
        "API_TOKEN": TOKEN,
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "DATABASE_URL": f"postgresql://nobody:nothing@127.0.0.1:{port}/none",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC,
    }
    values.update(overrides)
    return IngestSettings(**values)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://internal:8080"
        ) as c,
    ):
        yield c


def enrollment(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient_id": "p-001",
        "phone": "+15551230001",
        "timezone": "America/Chicago",
        "language": "en",
        "surgery_date": dt.date.today().isoformat(),
        "baseline_severity": 3,
        "care_team": {"on_call": "+15550001111", "backup": "+15550002222"},
        "sms_consent": True,
    }
    body.update(changes)
    return body


def report() -> dict[str, Any]:
    return {
        "patient_id": "p-001",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "severity": 2,
    }


def signed(path: str, form: dict[str, str], base: str = PUBLIC) -> dict[str, str]:
    return {
        "X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(base + path, form)
    }


def inbound_form() -> dict[str, str]:
    return {"MessageSid": "SM" + "b" * 32, "From": "+15551230001", "Body": "2"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["fields"], list)
    return dict(error)


# --- settings -----------------------------------------------------------------------------


def test_refuses_the_development_token_off_loopback() -> None:
    with pytest.raises(ValidationError, match="development API_TOKEN"):
        IngestSettings(API_TOKEN=DEV_API_TOKEN, BIND_HOST="0.0.0.0")
    with pytest.raises(ValidationError, match="development API_TOKEN"):
        IngestSettings(API_TOKEN=DEV_API_TOKEN, BIND_HOST="10.1.2.3")


def test_accepts_the_development_token_on_loopback() -> None:
    for host in ("127.0.0.1", "localhost", "::1"):
        assert IngestSettings(API_TOKEN=DEV_API_TOKEN, BIND_HOST=host).bind_host == host


def test_refuses_a_short_token() -> None:
    with pytest.raises(ValidationError, match="16 characters"):
        IngestSettings(API_TOKEN="short", BIND_HOST="127.0.0.1")


def test_any_api_token_is_a_development_credential_refused_off_loopback() -> None:
    with pytest.raises(ValidationError, match="development API_TOKEN"):
        IngestSettings(API_TOKEN=TOKEN, BIND_HOST="0.0.0.0")
    # Without it, a service listens anywhere (callers bring the identity provider's tokens).
    assert IngestSettings(BIND_HOST="0.0.0.0").bind_host == "0.0.0.0"


PRODUCTION = {
    "ENVIRONMENT": "production",
    "BIND_HOST": "0.0.0.0",
    "DATABASE_URL": "postgresql://recovery:a-real-secret@db.internal:5432/recovery?sslmode=verify-full",
    "TWILIO_AUTH_TOKEN": "a-real-twilio-token",
    "AUDIT_DATABASE_URL": "postgresql://hfs_audit_writer:another-secret@db.internal:5432/recovery?sslmode=verify-full",
    "LOG_REF_KEY": "a-real-key-of-32-characters-long",
    "PUBLIC_BASE_URL": PUBLIC,
    "MASTER_KEY": "cHJvZHVjdGlvbi1tYXN0ZXIta2V5LW9mLTMyLWJ5dGU=",
}


@pytest.fixture
def production_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker's login as production gives it (not the passwords generated in .run/)."""
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "a-real-kafka-password")
    monkeypatch.setenv("KAFKA_CA_FILE", "/etc/hfs/kafka-ca.crt")


@pytest.mark.usefixtures("production_kafka")
def test_production_starts_without_development_secrets() -> None:
    assert IngestSettings(**PRODUCTION).environment == "production"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"API_TOKEN": TOKEN, "BIND_HOST": "127.0.0.1"}, "API_TOKEN"),
        ({"TWILIO_AUTH_TOKEN": "sandbox-auth-token"}, "TWILIO_AUTH_TOKEN"),
        ({"DATABASE_URL": "postgresql://recovery:recovery@db:5432/recovery"}, "DATABASE_URL"),
        (
            {"AUDIT_DATABASE_URL": "postgresql://hfs_audit_writer:hfs_audit_writer@db/recovery"},
            "AUDIT_DATABASE_URL",
        ),
        ({"LOG_REF_KEY": DEV_LOG_REF_KEY}, "LOG_REF_KEY"),
        ({"MASTER_KEY": DEV_MASTER_KEY}, "MASTER_KEY"),
    ],
)
@pytest.mark.usefixtures("production_kafka")
def test_production_refuses_each_development_secret_by_name(
    override: dict[str, str], named: str
) -> None:
    with pytest.raises(ValidationError, match=f"production refuses development secrets: {named}"):
        IngestSettings(**{**PRODUCTION, **override})


# --- Kafka and PostgreSQL unreachable -----------------------------------------------------


async def test_not_ready_while_dependencies_are_unreachable(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"kafka": False, "postgres": False}


async def test_every_write_answers_503_when_dependencies_are_unreachable(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/v1/patients", json=enrollment(), headers=AUTH)
    assert_error(r, 503, "unavailable")
    r = await client.post("/v1/symptom-reports", json=report(), headers=AUTH)
    assert_error(r, 503, "unavailable")
    form = inbound_form()
    r = await client.post(
        "/v1/twilio/inbound", data=form, headers=signed("/v1/twilio/inbound", form)
    )
    assert_error(r, 503, "unavailable")
    status = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "delivered"}
    r = await client.post(
        "/v1/twilio/status", data=status, headers=signed("/v1/twilio/status", status)
    )
    assert_error(r, 503, "unavailable")


# --- what is decided before any dependency ------------------------------------------------


async def test_missing_or_wrong_token_is_401(client: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": TOKEN},
    ):
        r = await client.post("/v1/symptom-reports", json=report(), headers=headers)
        assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith('Bearer realm="hfs"')


async def test_token_is_checked_before_the_fields(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/patients", json={"patient_id": 7})
    assert_error(r, 401, "unauthorized")


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/patients",
        content=b'{"patient_id": ',
        headers={**AUTH, "content-type": "application/json"},
    )
    assert_error(r, 400, "malformed_json")


async def test_a_body_that_is_not_an_object_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/symptom-reports", json=[1, 2], headers=AUTH)
    assert_error(r, 400, "invalid_body")


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    big = {**report(), "note": "x" * (70 * 1024)}
    r = await client.post("/v1/symptom-reports", json=big, headers=AUTH)
    assert_error(r, 413, "payload_too_large")
    form = {**inbound_form(), "Body": "y" * (70 * 1024)}
    r = await client.post(
        "/v1/twilio/inbound", data=form, headers=signed("/v1/twilio/inbound", form)
    )
    assert_error(r, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phone": "+1555123"}, "phone"),  # too short for the US plan
        ({"phone": "+999123456789"}, "phone"),  # no such country code
        ({"phone": "+1 555 123 0001"}, "phone"),  # not the canonical form
        ({"phone": "15551230001"}, "phone"),
        ({"care_team": {"on_call": "+44"}}, "care_team.on_call"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"baseline_severity": 0}, "baseline_severity"),
        ({"baseline_severity": "3"}, "baseline_severity"),
        ({"surgery_date": "2026-02-30"}, "surgery_date"),
        ({"language": "fr"}, "language"),
        ({"sms_consent": "maybe"}, "sms_consent"),
        ({"sms_consent": "true"}, "sms_consent"),
        ({"baseline_severity": 3.0}, "baseline_severity"),
        ({"patient_id": "x" * 65}, "patient_id"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_invalid_enrollment_fields_are_422(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    r = await client.post("/v1/patients", json=enrollment(**change), headers=AUTH)
    error = assert_error(r, 422, "invalid_fields")
    assert field in [f["field"] for f in error["fields"]]


async def test_the_patient_phone_cannot_be_a_care_team_phone(client: httpx.AsyncClient) -> None:
    body = enrollment(care_team={"on_call": "+15551230001"})
    r = await client.post("/v1/patients", json=body, headers=AUTH)
    error = assert_error(r, 422, "invalid_fields")
    assert error["fields"][0]["field"] == "phone"


async def test_twilio_magic_and_fictional_numbers_are_accepted(client: httpx.AsyncClient) -> None:
    body = enrollment(phone="+15005550006", care_team={"on_call": "+15551230002"})
    r = await client.post("/v1/patients", json=body, headers=AUTH)
    assert_error(r, 503, "unavailable")  # got past validation


async def test_idempotency_key_must_be_printable(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/patients", json=enrollment(), headers={**AUTH, "Idempotency-Key": "a b"}
    )
    assert_error(r, 422, "invalid_fields")


async def test_missing_or_wrong_twilio_signature_is_403(client: httpx.AsyncClient) -> None:
    form = inbound_form()
    for path in ("/v1/twilio/inbound", "/v1/twilio/status"):
        r = await client.post(path, data=form)
        assert_error(r, 403, "invalid_signature")
        r = await client.post(path, data=form, headers={"X-Twilio-Signature": "bm9wZQ=="})
        assert_error(r, 403, "invalid_signature")
        # Signed by someone with another auth token.
        other = RequestValidator("another-token").compute_signature(PUBLIC + path, form)
        r = await client.post(path, data=form, headers={"X-Twilio-Signature": other})
        assert_error(r, 403, "invalid_signature")
        # The signature covers the form: change one field and it no longer holds.
        sig = signed(path, form)
        r = await client.post(path, data={**form, "Body": "4"}, headers=sig)
        assert_error(r, 403, "invalid_signature")


async def test_signature_is_checked_against_the_public_url_not_the_internal_one(
    client: httpx.AsyncClient,
) -> None:
    form = inbound_form()
    internal = signed("/v1/twilio/inbound", form, base="http://internal:8080")
    r = await client.post("/v1/twilio/inbound", data=form, headers=internal)
    assert_error(r, 403, "invalid_signature")
    public = signed("/v1/twilio/inbound", form)
    r = await client.post("/v1/twilio/inbound", data=form, headers=public)
    assert_error(r, 503, "unavailable")  # the signature held


async def test_signed_webhook_without_twilio_fields_is_422(client: httpx.AsyncClient) -> None:
    form = {"From": "+15551230001", "Body": "2"}
    r = await client.post(
        "/v1/twilio/inbound", data=form, headers=signed("/v1/twilio/inbound", form)
    )
    assert "MessageSid" in [f["field"] for f in assert_error(r, 422, "invalid_fields")["fields"]]
    status = {"MessageSid": "SM" + "c" * 32, "MessageStatus": "exploded"}
    r = await client.post(
        "/v1/twilio/status", data=status, headers=signed("/v1/twilio/status", status)
    )
    assert "MessageStatus" in [f["field"] for f in assert_error(r, 422, "invalid_fields")["fields"]]


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/patients", headers=AUTH)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"


async def test_405_allow_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    r = await client.delete("/v1/clock", headers=AUTH)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, POST"


async def test_clock_is_404_without_the_simulated_clock(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/clock", json={"now": "2026-09-01T12:00:00Z"}, headers=AUTH)
    assert_error(r, 404, "not_found")


# --- OpenAPI ------------------------------------------------------------------------------


async def test_openapi_documents_every_answer(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    error_ref = "#/components/schemas/ErrorBody"
    expected = {
        "/v1/patients": {"202", "400", "401", "403", "409", "413", "422", "503"},
        "/v1/symptom-reports": {"202", "400", "401", "403", "404", "409", "413", "422", "503"},
        "/v1/clock": {"202", "400", "401", "403", "404", "409", "413", "422", "503"},
        "/v1/twilio/inbound": {"200", "403", "409", "413", "422", "503"},
        "/v1/twilio/status": {"204", "403", "409", "413", "422", "503"},
    }
    for path, statuses in expected.items():
        op = doc["paths"][path]["post"]
        assert set(op["responses"]) == statuses, path
        for status, response in op["responses"].items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": error_ref}, (path, status)
    inbound = doc["paths"]["/v1/twilio/inbound"]["post"]
    assert "text/xml" in inbound["responses"]["200"]["content"]
    assert "application/x-www-form-urlencoded" in inbound["requestBody"]["content"]
