"""The recovery rules: a pure core that decides, with no I/O, no clock and no ids of its own.

``decide(state, input, now) -> Decision`` folds one input (an enrollment, a symptom report,
a consent change, a clock tick) into a patient's state and returns the new state, the
notifications to send, and what the shell needs next (phase, report days, ``next_due``).
``now`` is always passed in; the same inputs give the same decisions. Every number of the
rules page, ``recovery-rules.md`` (``../shared/domain/recovery-rules.md`` from the
repository root, as the README links it), is a ``RuleSettings`` field with its default.

Where each part lives, and the interpretations that apply there:

* ``settings``: every number of the page.
* ``calendar``: day numbers, wall clock, quiet hours and day hours (DST never changes a
  span of days).
* ``phases``: the phase at an instant and remission.
* ``alerts``: the report-driven alerts, replayed over the ordered history.
* ``messages``: sending to the patient and the care team, consent, what a message spends.
* ``schedule``: the prompt calendar, lost to follow-up, completion, catch-up, ``next_due``.
* ``decision``: ``decide``, the one entry point, and what arrival order may and may not change.
* ``redflags``: the free-text red flags.
"""

from __future__ import annotations

from assessor.domain.alerts import AlertCandidate, alerts_view, history_alerts
from assessor.domain.calendar import day_number, day_start, local_instant
from assessor.domain.decision import decide
from assessor.domain.model import (
    ALERT_URGENCY,
    Alert,
    AlertKind,
    ClockTicked,
    ConsentUpdated,
    Decision,
    Enrolled,
    Input,
    PatientState,
    Phase,
    PromptRecord,
    Report,
    Reported,
)
from assessor.domain.phases import in_remission, phase_of
from assessor.domain.redflags import RED_FLAGS, red_flags
from assessor.domain.schedule import next_due
from assessor.domain.settings import DEFAULT_RULES, RuleSettings

__all__ = [
    "ALERT_URGENCY",
    "DEFAULT_RULES",
    "RED_FLAGS",
    "Alert",
    "AlertCandidate",
    "AlertKind",
    "ClockTicked",
    "ConsentUpdated",
    "Decision",
    "Enrolled",
    "Input",
    "PatientState",
    "Phase",
    "PromptRecord",
    "Report",
    "Reported",
    "RuleSettings",
    "alerts_view",
    "day_number",
    "day_start",
    "decide",
    "history_alerts",
    "in_remission",
    "local_instant",
    "next_due",
    "phase_of",
    "red_flags",
]
