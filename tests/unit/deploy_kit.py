"""What the deployment checks share: the repository's root and which environment variables
each package's code reads (the compose file and the k8s manifests may set no others)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "shared": ROOT / "shared" / "src",
    "ingest": ROOT / "services" / "ingest" / "src",
    "assessor": ROOT / "services" / "assessor" / "src",
    "notifier": ROOT / "services" / "notifier" / "src",
    "sandbox": ROOT / "services" / "sandbox" / "src",
    "console": ROOT / "services" / "console" / "src",
}
ENV_READS = (
    re.compile(r'validation_alias\s*=\s*"([A-Z][A-Z0-9_]*)"'),
    re.compile(r'os\.environ(?:\.get)?[\[(]\s*"([A-Z][A-Z0-9_]*)"'),
    re.compile(r'os\.getenv\(\s*"([A-Z][A-Z0-9_]*)"'),
)


def env_read_by(package: str) -> set[str]:
    names: set[str] = set()
    for path in SOURCES[package].rglob("*.py"):
        text = path.read_text()
        for pattern in ENV_READS:
            names.update(pattern.findall(text))
    return names
