"""Where the local stack's PostgreSQL and Kafka are (``make up``; the ports file moves them)."""

from __future__ import annotations

import os

from shared.kafka_security import TOOLS_PRINCIPAL, default_bootstrap

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://recovery:recovery@127.0.0.1:55432/recovery"
)
KAFKA_BOOTSTRAP = default_bootstrap()
# Service code run in-process here works on scratch topics and groups, which only the
# tools principal may use (the services' own principals are held to their ACLs).
os.environ.setdefault("KAFKA_SASL_USERNAME", TOOLS_PRINCIPAL)
