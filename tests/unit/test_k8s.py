"""The Kubernetes manifests under deploy/k8s, checked without a cluster: well-formed, every
file listed by the kustomization, probes, non-root, and every variable they set read by
the code (like the compose file's)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from shared.topics import PATIENT_PARTITIONS
from tests.unit.deploy_kit import ROOT, env_read_by

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
        if c["name"] != "kafka-provision"  # Kafka's own image and tools, not our code
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


def policies(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return by_kind(docs, "NetworkPolicy")


def selects(policy: dict[str, Any], app: str) -> bool:
    sel = policy["spec"]["podSelector"]
    if not sel:
        return True
    if sel.get("matchLabels", {}).get("app") == app:
        return True
    return any(
        e["key"] == "app" and e["operator"] == "In" and app in e["values"]
        for e in sel.get("matchExpressions", [])
    )


def peer_apps(rule: dict[str, Any], side: str) -> set[str] | None:
    """The ``app`` labels a rule's peers name; None when the rule admits any peer."""
    peers = rule.get(side)
    if not peers:
        return None
    apps: set[str] = set()
    for peer in peers:
        sel = peer.get("podSelector") or {}
        apps.update(v for k, v in sel.get("matchLabels", {}).items() if k == "app")
        for e in sel.get("matchExpressions", []):
            if e["key"] == "app" and e["operator"] == "In":
                apps.update(e["values"])
    return apps


def test_the_namespace_denies_all_traffic_by_default(docs: list[dict[str, Any]]) -> None:
    deny = [
        p
        for p in policies(docs).values()
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy"


def test_only_the_services_reach_kafka(docs: list[dict[str, Any]]) -> None:
    allowed: set[str] = set()
    for policy in policies(docs).values():
        if not selects(policy, "kafka"):
            continue
        for rule in policy["spec"].get("ingress", []):
            apps = peer_apps(rule, "from")
            assert apps is not None, f"{policy['metadata']['name']} lets anyone reach Kafka"
            allowed |= apps
    assert allowed == {
        "ingest",
        "assessor",
        "notifier",
        "console",
        "topics",
        "kafka",
        "kafka-provision",
    }


def test_every_workload_has_the_flows_it_needs(docs: list[dict[str, Any]]) -> None:
    workloads = {
        d["spec"]["template"]["metadata"]["labels"]["app"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
    }
    assert workloads == {
        "ingest",
        "assessor",
        "notifier",
        "console",
        "kafka",
        "topics",
        "kafka-provision",
    }
    for app in workloads:
        egress = [
            rule
            for p in policies(docs).values()
            if selects(p, app)
            for rule in p["spec"].get("egress", [])
        ]
        to_kafka = any("kafka" in (peer_apps(r, "to") or set()) for r in egress)
        assert to_kafka, f"{app} cannot reach Kafka"
    # Ingest is the public entry point; the read APIs are not.
    ingress_rules = {
        app: [
            rule
            for p in policies(docs).values()
            if selects(p, app) and p["spec"]["podSelector"]
            for rule in p["spec"].get("ingress", [])
        ]
        for app in ("ingest", "assessor", "notifier")
    }
    assert any("from" not in r for r in ingress_rules["ingest"])
    for app in ("assessor", "notifier"):
        assert ingress_rules[app], app
        assert all(r.get("from") for r in ingress_rules[app]), app


def test_no_secret_lives_in_the_applied_manifests(docs: list[dict[str, Any]]) -> None:
    """Passwords and tokens come from the Secret created out of band, never a manifest."""
    assert not by_kind(docs, "Secret")
    config = load("config.yaml")[0]["data"]
    secret_name = re.compile(r"PASSWORD|TOKEN|SECRET|DATABASE_URL|_KEY$")
    assert not [k for k in config if secret_name.search(k)]
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            for var in c.get("env", []):
                if secret_name.search(var["name"]):
                    assert "secretKeyRef" in var.get("valueFrom", {}), (c["name"], var["name"])


def test_the_brokers_are_locked_like_the_local_one(docs: list[dict[str, Any]]) -> None:
    (container,) = by_kind(docs, "StatefulSet")["kafka"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols == {"CLIENT": "SASL_SSL", "INTERNAL": "SSL", "CONTROLLER": "SSL"}
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_LISTENER_NAME_INTERNAL_SSL_CLIENT_AUTH"] == "required"
    assert env["KAFKA_LISTENER_NAME_CONTROLLER_SSL_CLIENT_AUTH"] == "required"
    config = load("config.yaml")[0]["data"]
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"


def test_the_provisioned_acls_are_the_code_s(docs: list[dict[str, Any]]) -> None:
    """kafka-provision applies exactly shared/kafka_security.py's list, and every service
    logs in with a password of its own."""
    from shared.kafka_security import PRINCIPALS, acl_lines

    acls = by_kind(docs, "ConfigMap")["kafka-acls"]["data"]["acls.txt"]
    assert acls.splitlines() == acl_lines()
    job = by_kind(docs, "Job")["kafka-provision"]["spec"]["template"]["spec"]
    (container,) = job["containers"]
    keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]}
    assert keys == {f"KAFKA_PASSWORD_{p.upper()}" for p in PRINCIPALS}
    for name in ("ingest", "assessor", "notifier", "console"):
        who = name.upper()
        (c,) = by_kind(docs, "Deployment")[name]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in c["env"]}
        ref = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "hfs-secrets", "key": f"KAFKA_PASSWORD_{who}"}


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
