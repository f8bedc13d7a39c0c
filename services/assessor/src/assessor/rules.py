"""The recovery rules: a pure core that decides, with no I/O, no clock and no ids of its own.

``decide(state, input, now) -> Decision`` folds one input (an enrollment, a symptom report,
a clock tick) into a patient's state and returns the new state plus the notifications to
send. ``now`` is always passed in; replaying the same inputs gives the same decisions.
Numbers come from ``RuleSettings`` whose defaults are those of ``recovery-rules.md``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from shared.events import (
    Language,
    NotificationKind,
    PatientEnrolledPayload,
    Urgency,
)

Phase = Literal[
    "pre_op",
    "early_postop",
    "expected_window",
    "persistent",
    "late_follow_up",
    "remission",
    "monitoring_complete",
]


@dataclass(frozen=True)
class RuleSettings:
    early_postop_last_day: int = 3
    expected_window_last_day: int = 182
    persistence_recent_day: int = 152
    monitoring_complete_day: int = 365
    remission_span: dt.timedelta = dt.timedelta(days=14)
    remission_first_day: int = 1
    reassurance_first_day: int = 1
    reassurance_interval_days: int = 14


DEFAULT_RULES = RuleSettings()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Report(_Frozen):
    event_id: uuid.UUID
    occurred_at: dt.datetime
    severity: int | None
    note: str | None = None


class PatientState(_Frozen):
    """Everything the rules know about one patient; JSON-serialisable for the table."""

    patient_id: str
    profile: PatientEnrolledPayload | None = None
    reports: tuple[Report, ...] = ()  # ordered by occurred_at, then event_id
    stream_time: dt.datetime | None = None
    emitted: frozenset[str] = frozenset()  # dedupe keys already decided
    last_reassurance_day: int | None = None


# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolled:
    profile: PatientEnrolledPayload


@dataclass(frozen=True)
class Reported:
    report: Report


@dataclass(frozen=True)
class ClockTicked:
    pass


Input = Enrolled | Reported | ClockTicked


# --- commands -------------------------------------------------------------------------


@dataclass(frozen=True)
class Notify:
    dedupe_key: str
    kind: NotificationKind
    audience: Literal["patient", "care_team"]
    urgency: Urgency
    to: str
    language: Language
    timezone: str
    due_at: dt.datetime
    facts: dict[str, str | int | None] = field(default_factory=dict)
    evidence: tuple[uuid.UUID, ...] = ()
    rule: str | None = None
    backup_to: str | None = None


@dataclass(frozen=True)
class Decision:
    state: PatientState
    commands: tuple[Notify, ...] = ()


# --- time -----------------------------------------------------------------------------


def day_number(surgery_date: dt.date, instant: dt.datetime, tz: str) -> int:
    """Calendar days from surgery to the patient's local date of ``instant`` (surgery = 0)."""
    return (instant.astimezone(ZoneInfo(tz)).date() - surgery_date).days


def _later(a: dt.datetime | None, b: dt.datetime) -> dt.datetime:
    return b if a is None or b > a else a


# --- phases ---------------------------------------------------------------------------


def in_remission(state: PatientState, rules: RuleSettings = DEFAULT_RULES) -> bool:
    """Latest report 0, and the run of zeros ending with it spans ≥ 14 days from day ≥ 1."""
    profile = state.profile
    graded = [r for r in state.reports if r.severity is not None]
    if profile is None or not graded or graded[-1].severity != 0:
        return False
    run: list[Report] = []
    for r in reversed(graded):
        if r.severity != 0:
            break
        run.append(r)
    first, last = run[-1], run[0]
    return (
        len(run) >= 2
        and last.occurred_at - first.occurred_at >= rules.remission_span
        and day_number(profile.surgery_date, first.occurred_at, profile.timezone)
        >= rules.remission_first_day
    )


def phase_of(state: PatientState, rules: RuleSettings = DEFAULT_RULES) -> Phase | None:
    """The patient's phase at their stream time; ``None`` before enrollment."""
    profile = state.profile
    if profile is None or state.stream_time is None:
        return None
    day = day_number(profile.surgery_date, state.stream_time, profile.timezone)
    if day >= rules.monitoring_complete_day:
        return "monitoring_complete"
    if in_remission(state, rules):
        return "remission"
    if day < 0:
        return "pre_op"
    if day <= rules.early_postop_last_day:
        return "early_postop"
    if day <= rules.expected_window_last_day:
        return "expected_window"
    graded = [r for r in state.reports if r.severity is not None]
    if graded:
        latest = graded[-1]
        latest_day = day_number(profile.surgery_date, latest.occurred_at, profile.timezone)
        if latest_day >= rules.persistence_recent_day and (latest.severity or 0) >= 1:
            return "persistent"
    return "late_follow_up"


# --- decide ---------------------------------------------------------------------------


def decide(
    state: PatientState, event: Input, now: dt.datetime, rules: RuleSettings = DEFAULT_RULES
) -> Decision:
    """Fold one input into the state at ``now`` and say what to send."""
    if isinstance(event, Enrolled):
        return Decision(
            state.model_copy(
                update={"profile": event.profile, "stream_time": _later(state.stream_time, now)}
            )
        )
    if isinstance(event, ClockTicked):
        return Decision(state.model_copy(update={"stream_time": _later(state.stream_time, now)}))
    return _on_report(state, event.report, now, rules)


def _on_report(
    state: PatientState, report: Report, now: dt.datetime, rules: RuleSettings
) -> Decision:
    if any(r.event_id == report.event_id for r in state.reports):
        return Decision(state)  # a redelivered or replayed report changes nothing
    reports = tuple(
        sorted((*state.reports, report), key=lambda r: (r.occurred_at, str(r.event_id)))
    )
    state = state.model_copy(
        update={
            "reports": reports,
            "stream_time": _later(_later(state.stream_time, now), report.occurred_at),
        }
    )
    profile = state.profile
    if profile is None:
        return Decision(state)
    commands: list[Notify] = []
    day = day_number(profile.surgery_date, report.occurred_at, profile.timezone)
    key = f"{state.patient_id}:reassurance:{report.event_id}"
    # "At most one per 14 days" counts calendar days, so DST never shortens the span.
    recent = (
        state.last_reassurance_day is not None
        and day - state.last_reassurance_day < rules.reassurance_interval_days
    )
    if (
        report.severity is not None
        and report.severity >= 1
        and rules.reassurance_first_day <= day <= rules.expected_window_last_day
        and not recent
        and key not in state.emitted
    ):
        commands.append(
            Notify(
                dedupe_key=key,
                kind="reassurance",
                audience="patient",
                urgency="routine",
                to=profile.phone,
                language=profile.language,
                timezone=profile.timezone,
                due_at=now,
                facts={"day": day, "severity": report.severity},
                evidence=(report.event_id,),
            )
        )
        state = state.model_copy(
            update={"emitted": state.emitted | {key}, "last_reassurance_day": day}
        )
    return Decision(state, tuple(commands))
