"""Kafka client security settings and the ACL list, without a broker (the running broker's
enforcement is tests/e2e/test_kafka_acls.py)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared.kafka_security import (
    ACLS,
    PRINCIPALS,
    KafkaConfigError,
    KafkaSecurity,
    acl_lines,
    client_options,
    faust_credentials,
)
from shared.topics import DECISIONS, PATIENT_EVENTS, TOPICS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_kafka_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
                "KAFKA_SASL_MECHANISM", "KAFKA_CREDENTIALS_DIR", "KAFKA_CA_FILE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def local(tmp_path: Path) -> KafkaSecurity:
    """What ``make up`` generates: a CA and a password file per principal."""
    tls = tmp_path / "tls"
    tls.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=test CA", "-keyout", str(tls / "ca.key"), "-out", str(tls / "ca.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "notifier").write_text("notifier-password\n")
    return KafkaSecurity(KAFKA_CREDENTIALS_DIR=str(creds), KAFKA_CA_FILE=str(tls / "ca.crt"))


def test_a_service_logs_in_as_itself_with_its_generated_password(local: KafkaSecurity) -> None:
    opts = client_options("notifier", local)
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert opts["sasl_plain_username"] == "notifier"
    assert opts["sasl_plain_password"] == "notifier-password"
    ctx = opts["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname


def test_the_environment_overrides_the_principal(local: KafkaSecurity) -> None:
    sec = local.model_copy(
        update={"sasl_username": "ingest", "sasl_password": SecretStr("from-the-secret-store")}
    )
    opts = client_options("notifier", sec)
    assert (opts["sasl_plain_username"], opts["sasl_plain_password"]) == (
        "ingest",
        "from-the-secret-store",
    )


def test_a_missing_password_is_a_clear_error(local: KafkaSecurity) -> None:
    with pytest.raises(KafkaConfigError, match="no Kafka password for principal console") as err:
        client_options("console", local)
    assert "KAFKA_SASL_PASSWORD" in str(err.value)


def test_a_missing_ca_is_a_clear_error(tmp_path: Path) -> None:
    sec = KafkaSecurity(KAFKA_CA_FILE=str(tmp_path / "nope.crt"), KAFKA_SASL_PASSWORD="x")
    with pytest.raises(KafkaConfigError, match="KAFKA_CA_FILE"):
        client_options("admin", sec)


def test_plaintext_needs_no_secrets() -> None:
    sec = KafkaSecurity(KAFKA_SECURITY_PROTOCOL="PLAINTEXT")
    assert client_options("ingest", sec) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials("assessor", sec) is None


def test_faust_gets_the_same_login(local: KafkaSecurity) -> None:
    creds = faust_credentials("notifier", local)
    assert creds.username == "notifier"
    assert creds.mechanism.value == "SCRAM-SHA-512"


def test_only_the_assessor_writes_decisions() -> None:
    """A decision's text becomes an SMS: injecting one is the attack the ACLs stop."""
    writers = {who for who, g in ACLS.items() if DECISIONS in g.write}
    assert writers == {"assessor"}
    assert "ingest" not in {who for who, g in ACLS.items() if PATIENT_EVENTS in g.read}


def test_every_topic_read_is_written_by_someone_and_exists() -> None:
    names = {t.name for t in TOPICS}
    read = {t for g in ACLS.values() for t in g.read}
    written = {t for g in ACLS.values() for t in g.write}
    assert read <= written
    assert read | written <= names


def test_acl_lines_are_what_provision_applies() -> None:
    lines = acl_lines()
    assert "assessor TOPIC LITERAL decisions.v1 WRITE" in lines
    assert "notifier TOPIC LITERAL decisions.v1 READ" in lines
    assert "notifier TOPIC LITERAL decisions.v1 WRITE" not in lines
    assert "assessor TOPIC PREFIXED assessor- CREATE" in lines
    assert all(len(line.split()) == 5 for line in lines)
    # The principals make up generates a password for.
    assert set(PRINCIPALS) == {"admin", "ingest", "assessor", "notifier", "console"}


def test_the_broker_denies_by_default_and_has_no_plaintext_listener() -> None:
    props = (ROOT / "deploy" / "kafka" / "server.properties").read_text()
    settings = dict(
        line.split("=", 1)
        for line in props.splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert settings["allow.everyone.if.no.acl.found"] == "false"
    assert settings["authorizer.class.name"].endswith("StandardAuthorizer")
    protocols = dict(p.split(":") for p in settings["listener.security.protocol.map"].split(","))
    assert protocols == {"CLIENT": "SASL_SSL", "INTERNAL": "SSL", "CONTROLLER": "SSL"}
    assert settings["listener.name.internal.ssl.client.auth"] == "required"
    assert settings["listener.name.controller.ssl.client.auth"] == "required"
    assert all("127.0.0.1:" in listener for listener in settings["listeners"].split(","))
