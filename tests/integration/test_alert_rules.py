"""The alert rules (deploy/prometheus/alerts.yml) are valid and fire on the series they are
about, checked by Debian's promtool (installed with prometheus by deploy/prometheus.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: run deploy/prometheus.sh", pytrace=False)
    return subprocess.run(
        [binary, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, check=False
    )


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


def test_each_rule_fires_on_its_series_and_not_before() -> None:
    done = promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_both_prometheus_configurations_load_the_rules(config: str) -> None:
    done = promtool("check", "config", config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout
