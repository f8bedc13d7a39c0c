"""Formatting for the templates: labels, durations, the patient's day, page status."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from console.chart import KIND_LABELS

OUTCOMES = {
    "called_patient": "Called the patient",
    "appointment_booked": "Appointment booked",
    "imaging_ordered": "Imaging ordered",
    "no_action_needed": "No action needed",
}


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " "))


def phase_label(phase: str | None) -> str:
    return phase.replace("_", " ") if phase else "not yet assessed"


def day_of(surgery_date: dt.date | None, timezone: str | None, at: dt.datetime) -> int | None:
    """Post-operative day of ``at`` in the patient's zone (surgery day = 0)."""
    if surgery_date is None or not timezone:
        return None
    return (at.astimezone(ZoneInfo(timezone)).date() - surgery_date).days


def since(then: dt.datetime, now: dt.datetime) -> str:
    """How long ago, for "time open": "5 min", "3 h 12 min", "4 d 2 h"."""
    minutes = max(0, int((now - then).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


def page_status(alert: dict[str, Any], page: dict[str, Any] | None) -> str:
    """Where the alert's page stands: the notifier's word, or the console's record."""
    if page is None:
        return "acknowledged" if alert.get("acknowledged_at") else "unknown"
    status = str(page.get("status"))
    if page.get("acknowledged_at") or status == "acknowledged":
        return "acknowledged"
    if status == "escalated":
        return f"escalated (step {page.get('escalations', 1)})"
    if status in ("sent", "delivered"):
        return status
    if status in ("scheduled", "sending"):
        return "queued"
    return status


def when(at: dt.datetime | None) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if at else ""
