"""A real Prometheus (Debian's package, ``deploy/prometheus.sh``) scrapes the local stack.

It runs as its own process on a free port with its data under a temporary directory, using
``deploy/prometheus/prometheus.yml`` with the stack's ports (``INGEST_PORT`` …). Checked
through its HTTP API: every target is up, and every metric name a dashboard under
``deploy/grafana/dashboards/`` queries exists — except the Kafka lag exporter's, which only
``docker compose up`` runs (``EXPORTER_ONLY``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from shared.kafka_security import client_options
from shared.topics import DECISIONS
from tests.integration.stack_env import KAFKA_BOOTSTRAP

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
PORTS = {
    "ingest": int(os.environ.get("INGEST_PORT", "8080")),
    "assessor": int(os.environ.get("ASSESSOR_PORT", "8081")),
    "notifier": int(os.environ.get("NOTIFIER_PORT", "8082")),
    "sandbox": int(os.environ.get("SANDBOX_PORT", "8090")),
}
# Metrics only danielqsj/kafka-exporter provides (docker compose), not our services.
EXPORTER_ONLY = {"kafka_consumergroup_lag"}

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, labels and keywords removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([A-Za-z_:][\w:]*)(\s*\()?", expr):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboard_exprs() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        doc = json.loads(path.read_text())
        for panel in doc["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
    return out


def test_metric_names_parser() -> None:
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, type) (rate(a_seconds_bucket{x="y"}[5m])))'
    ) == {"a_seconds_bucket"}
    assert metric_names('max(b) / sum(max by (month) (c{month="1"})) + vector(0.35)') == {
        "b",
        "c",
    }
    assert metric_names("rate(d_total[$__rate_interval])") == {"d_total"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_config(tmp: Path) -> Path:
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["scrape_timeout"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    # The real rules, with their `for:` durations cut so a test need not wait minutes.
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    (tmp / "alerts.yml").write_text(yaml.safe_dump(rules))
    assert config["rule_files"] == ["alerts.yml"]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{PORTS[job['job_name']]}"]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the prometheus binary is not installed: run deploy/prometheus.sh "
            "(apt-get install prometheus; `make integration` does it)",
            pytrace=False,
        )
    tmp = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={local_config(tmp)}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited: {(tmp / 'prometheus.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("prometheus did not become ready in 30 s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def api(url: str, path: str, **params: str) -> Any:
    resp = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=5)
    resp.raise_for_status()
    body = resp.json()
    assert body["status"] == "success", body
    return body["data"]


def wait_for_scrapes(url: str, timeout: float = 30) -> list[dict[str, Any]]:
    """Until every target has been scraped at least twice and all are up (or time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        targets = api(url, "targets", state="active")["activeTargets"]
        jobs = {t["labels"]["job"] for t in targets}
        up = all(t["health"] == "up" for t in targets)
        scraped = api(url, "query", query="min(count_over_time(up[1m]))")["result"]
        twice = bool(scraped) and float(scraped[0]["value"][1]) >= 2
        if (jobs == set(PORTS) and up and twice) or time.monotonic() > deadline:
            return list(targets)
        time.sleep(0.5)


def test_every_target_is_up_and_every_dashboard_metric_exists(prometheus: str) -> None:
    targets = wait_for_scrapes(prometheus)
    assert {t["labels"]["job"] for t in targets} == set(PORTS)
    down = {t["labels"]["job"]: t["lastError"] for t in targets if t["health"] != "up"}
    assert not down, f"targets not up: {down}"

    exported = set(api(prometheus, "label/__name__/values"))
    used: dict[str, list[str]] = {}
    for dashboard, title, expr in dashboard_exprs():
        for name in metric_names(expr):
            used.setdefault(name, []).append(f"{dashboard}: {title}")
    assert used, "no dashboard queries found"
    missing = {name: where for name, where in used.items() if name not in exported | EXPORTER_ONLY}
    assert not missing, f"dashboards query metrics no service exports: {missing}"
    # The exporter-only list names exactly what the dashboards take from the exporter.
    assert set(used) >= EXPORTER_ONLY, EXPORTER_ONLY - set(used)
    assert not (EXPORTER_ONLY & exported), "an exporter-only name is exported by a service"

    # Every query parses and evaluates (Grafana's $__rate_interval as a fixed window).
    for dashboard, title, expr in dashboard_exprs():
        query = expr.replace("$__rate_interval", "1m")
        resp = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5)
        assert resp.status_code == 200, f"{dashboard}: {title}: {expr}: {resp.text}"

    for job in PORTS:
        series = api(prometheus, "series", **{"match[]": f'{{job="{job}"}}'})
        assert series, f"no series scraped from {job}"
        for s in series:  # no phone number in any label value
            assert not any(re.fullmatch(r"\+\d{8,15}", v) for v in s.values()), s


def alert_states(url: str) -> dict[str, str]:
    return {a["labels"]["alertname"]: a["state"] for a in api(url, "alerts")["alerts"]}


async def _poison_a_decision() -> None:
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA_BOOTSTRAP, **client_options(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(DECISIONS, b'{"type": "not a decision"', key=b"it-alert")
    finally:
        await producer.stop()


def test_a_dead_letter_fires_its_alert_for_real(prometheus: str) -> None:
    """The stack's notifier dead-letters a garbage decision; Prometheus, evaluating
    deploy/prometheus/alerts.yml, raises HfsDeadLettersGrowing."""
    wait_for_scrapes(prometheus)
    rules = {r["name"] for g in api(prometheus, "rules")["groups"] for r in g["rules"]}
    assert {"HfsUrgentPageUnanswered", "HfsDeadLettersGrowing", "HfsLoopHeartbeatStale"} <= rules
    assert "HfsDeadLettersGrowing" not in alert_states(prometheus)
    asyncio.run(_poison_a_decision())
    deadline = time.monotonic() + 60
    while alert_states(prometheus).get("HfsDeadLettersGrowing") != "firing":
        assert time.monotonic() < deadline, f"not firing: {alert_states(prometheus)}"
        time.sleep(0.5)
