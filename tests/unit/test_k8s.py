"""The Kubernetes manifests under deploy/k8s, checked without a cluster: well-formed, every
file listed by the kustomization, probes, non-root, and every variable they set read by
the code (like the compose file's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.topics import PATIENT_PARTITIONS
from tests.unit.test_compose import env_read_by

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
PACKAGES = {
    "ingest": ["shared", "ingest"],
    "assessor": ["shared", "assessor"],
    "notifier": ["shared", "notifier"],
    "console": ["shared", "console"],
    "topics": ["shared"],
}


def load(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    kustomization = load("kustomization.yaml")[0]
    out = []
    for resource in kustomization["resources"]:
        out.extend(load(resource))
    return out


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_manifest_is_listed_and_well_formed(docs: list[dict[str, Any]]) -> None:
    listed = set(load("kustomization.yaml")[0]["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk
    for doc in docs:
        assert doc.get("apiVersion"), doc
        assert doc.get("kind"), doc
        assert doc["metadata"].get("name"), doc


def test_services_run_non_root_with_probes(docs: list[dict[str, Any]]) -> None:
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {"ingest", "assessor", "notifier", "console"}
    for name, dep in deployments.items():
        spec = dep["spec"]
        assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
        (container,) = spec["template"]["spec"]["containers"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe in container, (name, probe)
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["securityContext"]["runAsNonRoot"] is True
        assert "resources" in container
        assert name in by_kind(docs, "Service")
    assert deployments["assessor"]["spec"]["replicas"] <= PATIENT_PARTITIONS


def test_every_variable_set_is_read_and_defined(docs: list[dict[str, Any]]) -> None:
    config = load("config.yaml")[0]["data"]
    secret = load("secret.example.yaml")[0]["stringData"]
    containers = [
        c
        for d in docs
        if d["kind"] in ("Deployment", "Job")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert {c["name"] for c in containers} == set(PACKAGES)
    for c in containers:
        read = set().union(*(env_read_by(p) for p in PACKAGES[c["name"]]))
        for var in c["env"]:
            assert var["name"] in read, f"{c['name']} sets {var['name']}, which no code reads"
            ref = var.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                assert ref["configMapKeyRef"]["key"] in config, var
            if "secretKeyRef" in ref:
                assert ref["secretKeyRef"]["key"] in secret, var
    assert set(config) <= {v["name"] for c in containers for v in c["env"]}


def test_kafka_has_three_brokers_at_the_local_version(docs: list[dict[str, Any]]) -> None:
    version = next(
        line.split("=", 1)[1]
        for line in (ROOT / "deploy" / "versions.env").read_text().splitlines()
        if line.startswith("KAFKA_VERSION=")
    )
    kafka = by_kind(docs, "StatefulSet")["kafka"]
    assert kafka["spec"]["replicas"] == 3
    (container,) = kafka["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"apache/kafka:{version}"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3


def test_the_console_takes_its_secrets_from_the_secret_and_serves_https(
    docs: list[dict[str, Any]],
) -> None:
    (container,) = by_kind(docs, "Deployment")["console"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    for name in ("CONSOLE_SECRET_KEY", "CONSOLE_OIDC_CLIENT_SECRET", "DATABASE_URL"):
        assert "secretKeyRef" in env[name].get("valueFrom", {}), name
    config = load("config.yaml")[0]["data"]
    assert config["CONSOLE_PUBLIC_URL"].startswith("https://")
    assert config["ENVIRONMENT"] == "production"
