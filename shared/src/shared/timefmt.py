"""Instants as the contract writes them: RFC 3339 in UTC with a ``Z``."""

from __future__ import annotations

import datetime as dt


def utc_z(instant: dt.datetime) -> str:
    """``2026-03-02T15:00:00Z``: the instant in UTC with ``Z`` for the offset. Pass an aware
    instant: ``astimezone`` would read a naive one as the machine's local time."""
    return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
