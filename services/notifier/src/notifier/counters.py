"""The notifier's counters and histograms (labels are enumerations: no phone, body or
patient id); the gauges computed from the ledger on a scrape are in ``notifier.metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CONSUMED = Counter("notifier_events_total", "Decisions consumed", ["outcome"])
SENT = Counter("notifier_notifications_total", "Send outcomes", ["kind", "status", "error_code"])
DEAD = Counter("notifier_dead_letters_total", "Messages sent to the dead-letter topic", ["reason"])
TWILIO_LATENCY = Histogram("notifier_twilio_seconds", "Twilio API call latency")
RECONCILED = Counter(
    "notifier_reconciled_total", "Messages left sending, looked up at the provider", ["outcome"]
)
PROVIDER_EVENTS_SEEN = Counter(
    "notifier_provider_events_total", "Status callbacks and ACKs consumed", ["type", "outcome"]
)
ESCALATIONS = Counter("notifier_escalations_total", "Page escalation steps", ["step"])
INCIDENTS = Counter(
    "notifier_page_incidents_total",
    "Urgent alerts still unacknowledged after their last reminder (reached: whether any of"
    " their texts was reported delivered)",
    ["reached"],
)
CALLS = Counter("notifier_page_calls_total", "Page phone calls by outcome", ["outcome"])
ACKS_THROTTLED = Counter(
    "notifier_acks_throttled_total", "ACK texts ignored: too many wrong codes from that phone"
)
CONSENT = Counter("notifier_consent_changes_total", "Suppression list updates", ["reason"])
COMMITS_REFUSED = Counter(
    "notifier_commits_refused_total", "Offset commits refused after a rebalance (redelivered)"
)
_WAIT_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)
DECISION_TO_SEND = Histogram(
    "notifier_decision_to_send_seconds",
    "Business-clock time from recording a decision to the provider's accept (includes deferral"
    " out of quiet hours)",
    ["audience"],
    buckets=_WAIT_BUCKETS,
)
DUE_TO_SEND = Histogram(
    "notifier_due_to_send_seconds",
    "Business-clock lateness: from a notification's due time to the provider's accept",
    ["audience"],
    buckets=_WAIT_BUCKETS,
)
for _outcome in ("recorded", "duplicate", "dead_letter"):
    CONSUMED.labels(_outcome)
for _reason in ("invalid", "retries_exhausted"):
    DEAD.labels(_reason)
for _status in ("sent", "failed", "suppressed", "retry"):
    SENT.labels("reassurance", _status, "")
ESCALATIONS.labels("1")
CALLS.labels("placed")
for _reached in ("yes", "no"):
    INCIDENTS.labels(_reached)
for _reason in ("enrollment", "stop", "provider_21610"):
    CONSENT.labels(_reason)
for _type, _outcome in (("status", "applied"), ("ack", "acknowledged")):
    PROVIDER_EVENTS_SEEN.labels(_type, _outcome)
for _audience in ("patient", "care_team"):
    DECISION_TO_SEND.labels(_audience)
    DUE_TO_SEND.labels(_audience)
