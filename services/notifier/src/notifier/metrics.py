"""Gauges computed from the ledger on each scrape (every replica reports the whole ledger:
aggregate with max(), not sum()). Labels are enumerations: no phone, body or patient id."""

from __future__ import annotations

import asyncpg
from prometheus_client import Gauge

STATUSES = (
    "scheduled",
    "sending",
    "sent",
    "delivered",
    "failed",
    "suppressed",
    "acknowledged",
    "escalated",
)

BY_STATUS = Gauge(
    "notifier_ledger_notifications",
    "Ledger rows by audience, kind and status",
    ["audience", "kind", "status"],
)
PAGES = Gauge(
    "notifier_pages",
    "Urgent care-team alerts: open (unacknowledged, not escalated), escalated (unacknowledged,"
    " moved to the backup), incident (unacknowledged after the last reminder), acknowledged",
    ["state"],
)
UNDELIVERED = Gauge(
    "notifier_pages_undelivered",
    "Unacknowledged urgent alerts none of whose texts the provider has accepted yet",
)
SUPPRESSED = Gauge("notifier_suppressed_patients", "Patients opted out of texts")
PAGE_STATES = ("open", "escalated", "incident", "acknowledged")
for _state in PAGE_STATES:
    PAGES.labels(_state)


async def refresh(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        "SELECT audience, kind, status, count(*) AS n FROM notifier.notifications GROUP BY 1, 2, 3"
    )
    BY_STATUS.clear()
    for row in rows:
        BY_STATUS.labels(row["audience"], row["kind"], row["status"]).set(row["n"])
    pages = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE acknowledged_at IS NULL AND status <> 'suppressed'"
        " AND escalations_done = 0) AS open,"
        " count(*) FILTER (WHERE acknowledged_at IS NULL AND escalations_done > 0"
        " AND incident_at IS NULL) AS escalated,"
        " count(*) FILTER (WHERE acknowledged_at IS NULL AND incident_at IS NOT NULL)"
        " AS incident,"
        " count(*) FILTER (WHERE acknowledged_at IS NOT NULL OR status = 'acknowledged')"
        " AS acknowledged,"
        " count(*) FILTER (WHERE acknowledged_at IS NULL AND status <> 'suppressed'"
        " AND NOT EXISTS (SELECT 1 FROM notifier.notifications c"
        " WHERE (c.notification_id = r.notification_id OR c.root_id = r.notification_id)"
        " AND c.provider_sid IS NOT NULL)) AS undelivered"
        " FROM notifier.notifications r"
        " WHERE root_id IS NULL AND audience = 'care_team' AND urgency = 'urgent'"
    )
    for state in PAGE_STATES:
        PAGES.labels(state).set(pages[state] if pages else 0)
    UNDELIVERED.set(pages["undelivered"] if pages else 0)
    SUPPRESSED.set(
        await pool.fetchval("SELECT count(*) FROM notifier.suppressions WHERE suppressed") or 0
    )
