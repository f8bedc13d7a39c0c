"""Where the local stack's PostgreSQL and Kafka are (``make up``; the ports file moves them)."""

from __future__ import annotations

import os

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://recovery:recovery@127.0.0.1:55432/recovery"
)
KAFKA_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
