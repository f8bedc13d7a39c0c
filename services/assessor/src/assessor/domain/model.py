"""What the rules know and say: a patient's state, the inputs folded into it, the commands.

Everything is frozen. ``PatientState`` round-trips through JSON (the assessor's state table
stores it); the inputs and commands are plain dataclasses that never leave the process
(a decision's commands are already the ``notification.send`` payloads, which the shell
wraps in their envelope).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from shared.events import (
    PatientEnrolledPayload,
    SendNotificationPayload,
    Urgency,
    UtcDatetime,
)
from shared.notification_kinds import KINDS
from shared.phases import Phase as Phase  # shared with the console; named here for the rules

AlertKind = Literal[
    "six_month_persistence", "worsening", "recurrence", "red_flag", "lost_to_follow_up"
]
#: Each alert's urgency, as the shared kinds table says (the one place it is decided).
ALERT_URGENCY: dict[AlertKind, Urgency] = {
    kind: KINDS[kind].urgency for kind in get_args(AlertKind)
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Report(_Frozen):
    """A symptom report. One without a severity (a note only) counts for the 24-hour prompt
    skip, for ending a silence and for red flags; the severity rules see graded reports only."""

    event_id: uuid.UUID
    occurred_at: UtcDatetime
    severity: Annotated[int, Field(ge=0, le=4)] | None
    note: str | None = None


class PromptRecord(_Frozen):
    """A check-in prompt decided for slot ``day`` at instant ``at`` (or skipped by catch-up)."""

    day: int
    at: UtcDatetime
    counted: bool  # consent was given: a "sent" prompt (lost to follow-up, 30-day spacing)
    skipped: bool = False  # passed with later prompts in one catch-up: never sent, not counted


class Alert(_Frozen):
    """A care-team alert raised (the read API lists kind, rule, raised_at, evidence)."""

    kind: AlertKind
    rule: str
    raised_at: UtcDatetime
    evidence: tuple[uuid.UUID, ...]
    cause: str
    dedupe_key: str


SortedKeys = Annotated[
    frozenset[str], PlainSerializer(lambda keys: sorted(keys), return_type=list[str])
]


class PatientState(_Frozen):
    """Everything the rules know about one patient; JSON round-trippable for the table.

    ``sms_consent`` starts as the first enrollment's; a later enrollment changes it only when
    its ``sms_consent`` differs from the previous profile's (so an unrelated profile edit
    cannot undo a STOP); ``ConsentUpdated`` always does."""

    patient_id: str
    profile: PatientEnrolledPayload | None = None
    sms_consent: bool | None = None
    reports: tuple[Report, ...] = ()  # ordered by occurred_at, then event_id
    stream_time: UtcDatetime | None = None
    timers_done_until: UtcDatetime | None = None  # set at the first enrollment
    emitted: SortedKeys = frozenset()  # dedupe keys already decided
    alerts: tuple[Alert, ...] = ()
    prompts: tuple[PromptRecord, ...] = ()
    last_reassurance_day: int | None = None
    congratulated: bool = False


# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolled:
    profile: PatientEnrolledPayload


@dataclass(frozen=True)
class Reported:
    report: Report


@dataclass(frozen=True)
class ConsentUpdated:
    sms_consent: bool


@dataclass(frozen=True)
class ClockTicked:
    pass


Input = Enrolled | Reported | ConsentUpdated | ClockTicked


# --- what a decision says -------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The new state, what to send, and what the shell needs next, computed once here.

    ``commands`` are the ``notification.send`` payloads themselves (the notifier's input).

    ``phase`` is the phase at the new stream time and ``previous_phase`` the one before this
    input (both None before enrollment): the shell's phase-change event. ``report_days`` is
    the day of each of ``state.reports``, in order: the read model. ``next_due`` is
    ``next_due(state)``: the shell's timer index."""

    state: PatientState
    commands: tuple[SendNotificationPayload, ...] = ()
    phase: Phase | None = None
    previous_phase: Phase | None = None
    report_days: tuple[int, ...] = ()
    next_due: dt.datetime | None = None
