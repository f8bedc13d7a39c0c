"""``ENVIRONMENT=production`` refuses each development secret and setting, naming it and
never showing its value; the SMS sandbox does not start in production at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from notifier.settings import NotifierSettings
from shared.logs import DEV_LOG_REF_KEY
from shared.production import refusals, register
from sms_sandbox.settings import SandboxSettings

DB = "postgresql://recovery:a-real-secret@db.internal:5432/recovery?sslmode=verify-full"
PRODUCTION: dict[str, Any] = {
    "ENVIRONMENT": "production",
    "BIND_HOST": "0.0.0.0",
    "DATABASE_URL": DB,
    "AUDIT_DATABASE_URL": DB.replace("recovery:a-real-secret", "hfs_audit_writer:other-secret"),
    "TWILIO_AUTH_TOKEN": "a-real-twilio-token",
    "TWILIO_API_BASE_URL": "https://api.twilio.com",
    "PUBLIC_BASE_URL": "https://hfs.example.org",
    "LOG_REF_KEY": "a-real-key-of-32-characters-long",
}


@pytest.fixture(autouse=True)
def production_kafka(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A production broker's settings: its own password and CA, not the generated ones."""
    ca = tmp_path / "kafka-ca.crt"
    ca.write_text("not read by the check")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "notifier")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "a-real-kafka-password")
    monkeypatch.setenv("KAFKA_CA_FILE", str(ca))
    for var in ("KAFKA_CREDENTIALS_DIR", "RUN_DIR", "SIMULATED_CLOCK", "API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return ca


def test_production_starts_with_production_settings() -> None:
    assert NotifierSettings(**PRODUCTION).environment == "production"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"API_TOKEN": "dev-token-0123456789", "BIND_HOST": "127.0.0.1"}, "API_TOKEN"),
        ({"TWILIO_AUTH_TOKEN": "sandbox-auth-token"}, "TWILIO_AUTH_TOKEN"),
        ({"DATABASE_URL": "postgresql://recovery:recovery@db:5432/r?sslmode=verify-full"},
         "DATABASE_URL (the default database password)"),
        ({"DATABASE_URL": DB.replace("sslmode=verify-full", "sslmode=require")},
         "DATABASE_URL (leaves loopback without sslmode=verify-full)"),
        ({"AUDIT_DATABASE_URL": None}, "AUDIT_DATABASE_URL (unset"),
        ({"AUDIT_DATABASE_URL": "postgresql://hfs_audit_writer:hfs_audit_writer@127.0.0.1/r"},
         "AUDIT_DATABASE_URL (the default audit writer password)"),
        ({"LOG_REF_KEY": DEV_LOG_REF_KEY}, "LOG_REF_KEY"),
        ({"SIMULATED_CLOCK": "1"}, "SIMULATED_CLOCK"),
        ({"PUBLIC_BASE_URL": "http://hfs.example.org"}, "PUBLIC_BASE_URL"),
        ({"TWILIO_API_BASE_URL": "http://127.0.0.1:8090"}, "TWILIO_API_BASE_URL"),
        ({"TWILIO_API_BASE_URL": "https://sandbox:8090"}, "TWILIO_API_BASE_URL"),
    ],
)  # fmt: skip
def test_production_refuses_each_by_name(override: dict[str, Any], named: str) -> None:
    values = {k: v for k, v in {**PRODUCTION, **override}.items() if v is not None}
    with pytest.raises(ValidationError) as err:
        NotifierSettings(**values)
    message = str(err.value)
    assert f"production refuses development secrets: {named}" in message
    # The value itself never appears (only the setting's name and why).
    for key, value in override.items():
        if value and key not in ("SIMULATED_CLOCK", "BIND_HOST"):
            assert str(value) not in message, key


def test_a_database_on_loopback_needs_no_tls() -> None:
    local = "postgresql://recovery:a-real-secret@127.0.0.1:5432/recovery"
    settings = NotifierSettings(**{**PRODUCTION, "DATABASE_URL": local})
    assert settings.environment == "production"


def test_every_refusal_is_listed_at_once() -> None:
    values = {**PRODUCTION, "SIMULATED_CLOCK": "1", "LOG_REF_KEY": DEV_LOG_REF_KEY}
    with pytest.raises(ValidationError, match=r"LOG_REF_KEY .*; SIMULATED_CLOCK"):
        NotifierSettings(**values)


def test_the_generated_kafka_password_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_SASL_PASSWORD")
    with pytest.raises(ValidationError, match=r"KAFKA_SASL_PASSWORD \(the development password"):
        NotifierSettings(**PRODUCTION)
    # A password file mounted from the secret store is fine.
    monkeypatch.setenv("KAFKA_CREDENTIALS_DIR", "/var/run/secrets/kafka")
    assert NotifierSettings(**PRODUCTION).environment == "production"


def test_the_generated_kafka_ca_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_CA_FILE")
    with pytest.raises(ValidationError, match=r"KAFKA_CA_FILE \(the development CA"):
        NotifierSettings(**PRODUCTION)


def test_development_accepts_the_development_values() -> None:
    assert NotifierSettings(SIMULATED_CLOCK="1").simulated_clock


def test_a_check_added_elsewhere_runs_for_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """How the master key or the console's secret key join the list."""
    from shared import production

    monkeypatch.setattr(production, "CHECKS", list(production.CHECKS))
    register(lambda s: "MASTER_KEY (the development key)")
    assert "MASTER_KEY (the development key)" in refusals(object())
    with pytest.raises(ValidationError, match="MASTER_KEY"):
        NotifierSettings(**PRODUCTION)


def test_the_sandbox_refuses_production() -> None:
    with pytest.raises(ValidationError, match="the SMS sandbox never runs in production"):
        SandboxSettings(ENVIRONMENT="production")
    assert SandboxSettings().environment == "development"
