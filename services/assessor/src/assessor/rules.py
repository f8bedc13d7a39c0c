"""The recovery rules: a pure core that decides, with no I/O, no clock and no ids of its own.

``decide(state, input, now) -> Decision`` folds one input (an enrollment, a symptom report,
a consent change, a clock tick) into a patient's state and returns the new state plus the
notifications to send. ``now`` is always passed in; the same inputs give the same decisions.
Every number of ``recovery-rules.md`` is a ``RuleSettings`` field with that page's default.

How one ``decide`` call runs
----------------------------
1. A report whose event id was already applied changes nothing (same state, no commands).
   A new report is inserted in ``occurred_at`` order (ties by event id).
2. Stream time becomes the latest of the previous stream time, ``now`` and the report's
   ``occurred_at``.
3. **Timers** (check-in prompt slots, lost-to-follow-up deadlines, day-365 completion, and
   the local midnights at which the phase can change) are processed in time order from
   ``timers_done_until`` up to the new stream time, each *as if the clock had ticked exactly
   at its due time*: a timer at ``t`` sees the reports with ``occurred_at <= t`` (a report at
   exactly ``t`` counts as before it), and ``next_due`` is exact: it is the earliest pending
   timer. Check-in prompts are the exception (see Catch-up): of several passed at once only
   the latest is sent.
4. **Report-driven rules** are evaluated over the whole ordered history
   (``history_alerts``): red flags, worsening episodes, recurrence per remission episode and
   six-month persistence (whose "first clock time" part is the local midnight of day 183,
   judged on the reports before it). An alert is raised unless an alert already raised
   *covers* it (same kind and same cause or a shared report; persistence: any). Every alert
   raised also tells the patient (``care_team_notified``).
5. Patient messages tied to the input: reassurance for the new report, and
   ``remission_congrats`` the first time the phase is ``remission``.

Catch-up
--------
When one decision passes several check-in prompt slots (a ticker outage, a restart, a jump
of the simulated clock), only the latest is decided, at ``max(slot, now)`` and out of quiet
hours; the earlier ones are recorded in ``prompts`` as ``skipped`` (never sent, never
counted for lost to follow-up or the 30-day spacing, never prompted later). Every other
timer (lost to follow-up, completion, phase boundaries) still fires, late.

Late and out-of-order reports
-----------------------------
A late report is inserted in place and step 4 re-runs over the ordered history, so an alert
the ordered history calls for is raised even when its reports arrived out of order. Nothing
is withdrawn or sent twice: a dedupe key in ``emitted`` is never emitted again. What "the
final state is independent of arrival order" means here, precisely (the property tests check
exactly this): for one enrollment and the same reports delivered in any order (then the
same clock tick), the final ``reports``, ``stream_time``, ``phase_of`` and ``in_remission``
are equal, and the raised alerts cover every ``history_alerts`` candidate; red flags are
exactly one per flagged report. When reports arrive in ``occurred_at`` order, each recorded
at its ``occurred_at``, the report-driven alerts raised are exactly the
``history_alerts`` candidates. Out of order there may be more (an alert raised on a partial
history stays raised — a page already sent is never unsent), never fewer. Time-driven
decisions (prompts, lost to follow-up) and patient messages reflect what was known when
their time came, and are not re-decided by a report that arrives later.

Opted-out patients
------------------
While SMS consent is false the core still decides every patient message; the notifier
checks consent at send time and records them as suppressed (architecture §4). Such messages
are spent: a suppressed reassurance still starts its 14 days, a suppressed congratulation is
not repeated. Check-in prompts decided while opted out are not "sent" prompts: they neither
count towards lost to follow-up nor restart the 30-day spacing in remission. Care-team
alerts are unaffected by consent. Consent starts as the first enrollment's ``sms_consent``;
a later enrollment update changes it only when its ``sms_consent`` differs from the previous
profile's (so an unrelated profile edit cannot undo a STOP); ``ConsentUpdated`` always does.

Interpretations
---------------
* "Day hours" 08:00–18:00 and quiet hours 21:00–08:00 are half-open: 08:00 is a day hour
  and not quiet, 18:00 is after hours, 21:00 is quiet. A message due in quiet hours moves to
  08:00 (prompts 10:00) that morning, or the next morning after 21:00; a routine alert due
  outside day hours moves to the next 08:00 in the care team's time zone (the patient's when
  the care team has none). Urgent alerts and ``care_team_notified`` after a red flag: now.
* Day spans are measured on the patient's calendar and wall clock, never in elapsed hours,
  so DST never shortens or lengthens them: the remission run's 14 days (noon to noon across
  a spring-forward is 14 days), "at most one reassurance per 14 days" and the 30-day prompt
  spacing count calendar days. The 24-hour recent-report skip and the 48-hour lost-to-
  follow-up wait are elapsed hours, as written.
* "A report that raised no care-team alert" (reassurance): a report that triggered an alert,
  or belongs to a worsening episode already alerted, gets no reassurance.
* Report-driven alerts stay active after day 365 (a red flag is a red flag); patient
  messages other than ``care_team_notified`` are not sent once monitoring is complete
  (reassurance ends at day 182, prompts at 362, congratulations need phase ``remission``).
* Reports without a severity (note only) are reports for the 24-hour prompt skip, for
  ending a silence, and for red flags; the severity rules only see graded reports.
* Care-team alerts carry the patient's language (the profile has no care-team language).
* Timers never fire for instants before the first enrollment (no catch-up of prompts for
  a patient enrolled late); a changed surgery date moves future slots, and a slot day whose
  key was already emitted is never prompted again.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from assessor.domain.redflags import RED_FLAGS, findings, red_flags
from shared.events import (
    Language,
    NotificationKind,
    PatientEnrolledPayload,
    Urgency,
    UtcDatetime,
)

__all__ = [
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
    "Notify",
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

Phase = Literal[
    "pre_op",
    "early_postop",
    "expected_window",
    "persistent",
    "late_follow_up",
    "remission",
    "monitoring_complete",
]
AlertKind = Literal[
    "six_month_persistence", "worsening", "recurrence", "red_flag", "lost_to_follow_up"
]
ALERT_URGENCY: dict[AlertKind, Urgency] = {
    "six_month_persistence": "routine",
    "worsening": "urgent",
    "recurrence": "routine",
    "red_flag": "urgent",
    "lost_to_follow_up": "routine",
}

_H = dt.timedelta(hours=1)


@dataclass(frozen=True)
class RuleSettings:
    """Every number of recovery-rules.md; the defaults are the page's."""

    # phases (days are calendar days in the patient's time zone; surgery day is day 0)
    early_postop_last_day: int = 3
    expected_window_last_day: int = 182
    persistence_day: int = 183
    persistence_recent_day: int = 152
    persistence_min_severity: int = 1
    monitoring_complete_day: int = 365
    monitoring_complete_time: dt.time = dt.time(10)
    # remission: a run of >= 2 zeros spanning >= 14 days (wall clock) from day >= 1
    remission_min_reports: int = 2
    remission_span: dt.timedelta = dt.timedelta(days=14)
    remission_first_day: int = 1
    remission_ignored_day: int = 0  # reports on surgery day neither start nor break a run
    # worsening: (a) above baseline from day 4; (b) two reports >= nadir + 2 from day 30
    worsening_first_day: int = 4
    nadir_first_day: int = 4
    nadir_pair_first_day: int = 30
    nadir_margin: int = 2
    # recurrence after remission: one report >= 2, or two consecutive >= 1
    recurrence_single_severity: int = 2
    recurrence_pair_severity: int = 1
    # lost to follow-up: 48 h after the third unanswered prompt
    lost_to_follow_up_prompts: int = 3
    lost_to_follow_up_wait: dt.timedelta = dt.timedelta(hours=48)
    # patient messages
    reassurance_first_day: int = 1
    reassurance_last_day: int = 182
    reassurance_interval_days: int = 14
    prompt_fixed_days: tuple[int, ...] = (1, 2, 3, 7, 14, 21, 28)
    prompt_biweekly_interval_days: int = 14
    prompt_biweekly_last_day: int = 182
    prompt_monthly_interval_days: int = 30
    prompt_monthly_last_day: int = 362
    prompt_time: dt.time = dt.time(10)
    prompt_skip_after_report: dt.timedelta = dt.timedelta(hours=24)
    remission_prompt_interval_days: int = 30
    # quiet hours (patient's zone) and care-team day hours (care team's zone)
    quiet_start: dt.time = dt.time(21)
    quiet_end: dt.time = dt.time(8)
    deferred_to: dt.time = dt.time(8)
    prompt_deferred_to: dt.time = dt.time(10)
    care_team_day_start: dt.time = dt.time(8)
    care_team_day_end: dt.time = dt.time(18)

    @functools.cached_property
    def prompt_days(self) -> tuple[int, ...]:
        """1, 2, 3, 7, 14, 21, 28, then every 14 days through 182, then every 30 through 362."""
        days = list(self.prompt_fixed_days)
        day = days[-1] if days else 0
        while day + self.prompt_biweekly_interval_days <= self.prompt_biweekly_last_day:
            day += self.prompt_biweekly_interval_days
            days.append(day)
        while day + self.prompt_monthly_interval_days <= self.prompt_monthly_last_day:
            day += self.prompt_monthly_interval_days
            days.append(day)
        return tuple(days)


DEFAULT_RULES = RuleSettings()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Report(_Frozen):
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
    """Everything the rules know about one patient; JSON round-trippable for the table."""

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


@functools.lru_cache(maxsize=1 << 16)  # pure: memoized only for speed
def day_number(surgery_date: dt.date, instant: dt.datetime, tz: str) -> int:
    """Calendar days from surgery to the patient's local date of ``instant`` (surgery = 0)."""
    return (instant.astimezone(ZoneInfo(tz)).date() - surgery_date).days


@functools.lru_cache(maxsize=1 << 16)  # pure: memoized only for speed
def local_instant(date: dt.date, time: dt.time, tz: str) -> dt.datetime:
    """The UTC instant of a local wall time (a time skipped by DST maps to just after the gap,
    a repeated one to its first occurrence)."""
    return dt.datetime.combine(date, time, tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


def day_start(surgery_date: dt.date, day: int, tz: str) -> dt.datetime:
    """The first instant of day ``day``."""
    return local_instant(surgery_date + dt.timedelta(days=day), dt.time(0), tz)


def _slot(profile: PatientEnrolledPayload, day: int, time: dt.time) -> dt.datetime:
    return local_instant(profile.surgery_date + dt.timedelta(days=day), time, profile.timezone)


def _wall(instant: dt.datetime, tz: str) -> dt.datetime:
    return instant.astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def _utc(instant: dt.datetime) -> dt.datetime:
    if instant.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return instant.astimezone(dt.UTC)


def _out_of_quiet_hours(at: dt.datetime, tz: str, to: dt.time, rules: RuleSettings) -> dt.datetime:
    local = at.astimezone(ZoneInfo(tz))
    t = local.time()
    start, end = rules.quiet_start, rules.quiet_end
    if start > end:  # the usual case: the quiet window wraps midnight
        if end <= t < start:
            return at
        date = local.date() + dt.timedelta(days=1) if t >= start else local.date()
    else:
        if not start <= t < end:
            return at
        date = local.date()
    return local_instant(date, to, tz)


def _into_day_hours(at: dt.datetime, tz: str, rules: RuleSettings) -> dt.datetime:
    local = at.astimezone(ZoneInfo(tz))
    t = local.time()
    if rules.care_team_day_start <= t < rules.care_team_day_end:
        return at
    date = local.date() if t < rules.care_team_day_start else local.date() + dt.timedelta(days=1)
    return local_instant(date, rules.care_team_day_start, tz)


# --- the history, graded --------------------------------------------------------------


class _Graded(NamedTuple):
    report: Report
    day: int
    severity: int


def _graded(reports: Sequence[Report], profile: PatientEnrolledPayload) -> list[_Graded]:
    """The graded reports with their days.

    One decision, and then its read-model view, ask for this several times with the same
    immutable tuple and profile, so recent answers are kept, matched by identity. Each entry
    holds both objects, so an identity match can never be a recycled id.
    """
    memo = _graded_memo.get(id(reports))
    if memo is not None and memo[0] is reports and memo[1] is profile:
        return list(memo[2])
    graded = tuple(
        _Graded(r, day_number(profile.surgery_date, r.occurred_at, profile.timezone), r.severity)
        for r in reports
        if r.severity is not None
    )
    if isinstance(reports, tuple):
        if len(_graded_memo) >= _GRADED_MEMO_SIZE:
            del _graded_memo[next(iter(_graded_memo))]  # the oldest
        _graded_memo[id(reports)] = (reports, profile, graded)
    return list(graded)


_GRADED_MEMO_SIZE = 2048
_graded_memo: dict[int, tuple[tuple[Report, ...], PatientEnrolledPayload, tuple[_Graded, ...]]] = {}


def _remission_flags(
    graded: Sequence[_Graded], profile: PatientEnrolledPayload, rules: RuleSettings
) -> list[bool]:
    """For each graded report: does the remission condition hold with it as the latest?"""
    flags: list[bool] = []
    run_start: int | None = None
    for i, g in enumerate(graded):
        if g.day == rules.remission_ignored_day:
            flags.append(False)  # surgery day: neither starts nor breaks a run
            continue
        if g.severity != 0:
            run_start = None
            flags.append(False)
            continue
        if run_start is None:
            run_start = i
        first = graded[run_start]
        span = _wall(g.report.occurred_at, profile.timezone) - _wall(
            first.report.occurred_at, profile.timezone
        )
        flags.append(
            i - run_start + 1 >= rules.remission_min_reports
            and span >= rules.remission_span
            and first.day >= rules.remission_first_day
        )
    return flags


def _reach_points(flags: Sequence[bool]) -> list[int]:
    """Indexes of the graded reports at which remission was reached (episode starts)."""
    return [i for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1])]


def in_remission(state: PatientState, rules: RuleSettings = DEFAULT_RULES) -> bool:
    """Latest report 0, and the run of zeros ending with it spans ≥ 14 days from day ≥ 1
    (reports on day 0 are ignored: they neither start nor break the run)."""
    if state.profile is None:
        return False
    graded = _graded(state.reports, state.profile)
    return bool(graded) and _remission_flags(graded, state.profile, rules)[-1]


def _phase_at(
    profile: PatientEnrolledPayload,
    reports: Sequence[Report],
    instant: dt.datetime,
    rules: RuleSettings,
) -> Phase:
    day = day_number(profile.surgery_date, instant, profile.timezone)
    if day >= rules.monitoring_complete_day:
        return "monitoring_complete"
    graded = _graded(reports, profile)
    if graded and _remission_flags(graded, profile, rules)[-1]:
        return "remission"
    if day < 0:
        return "pre_op"
    if day <= rules.early_postop_last_day:
        return "early_postop"
    if day <= rules.expected_window_last_day:
        return "expected_window"
    if day >= rules.persistence_day and graded:
        latest = graded[-1]
        if (
            latest.day >= rules.persistence_recent_day
            and latest.severity >= rules.persistence_min_severity
        ):
            return "persistent"
    return "late_follow_up"


def phase_of(state: PatientState, rules: RuleSettings = DEFAULT_RULES) -> Phase | None:
    """The patient's phase at their stream time; ``None`` before enrollment."""
    if state.profile is None or state.stream_time is None:
        return None
    return _phase_at(state.profile, state.reports, state.stream_time, rules)


# --- report-driven alerts over the ordered history ------------------------------------


@dataclass(frozen=True)
class AlertCandidate:
    """An alert the ordered history calls for; ``members`` are the reports its
    once-per-episode restriction spans (an alert sharing one of them covers it)."""

    kind: AlertKind
    rule: str
    cause: str
    evidence: tuple[Report, ...]
    members: frozenset[uuid.UUID]
    day: int
    facts: dict[str, str | int | None] = field(default_factory=dict)

    @functools.cached_property
    def member_ids(self) -> frozenset[str]:
        return frozenset(str(m) for m in self.members)


def _worsening(
    graded: Sequence[_Graded], profile: PatientEnrolledPayload, rules: RuleSettings
) -> list[AlertCandidate]:
    out: list[AlertCandidate] = []
    episode: list[uuid.UUID] | None = None
    opened: AlertCandidate | None = None
    # nadir_before[j]: lowest severity among graded[:j] on day >= nadir_first_day (or None)
    nadir_before: list[int | None] = [None]
    for g in graded:
        prev = nadir_before[-1]
        if g.day >= rules.nadir_first_day:
            prev = g.severity if prev is None else min(prev, g.severity)
        nadir_before.append(prev)

    def close() -> None:
        nonlocal episode, opened
        if opened is not None and episode is not None:
            out.append(
                AlertCandidate(
                    kind=opened.kind,
                    rule=opened.rule,
                    cause=opened.cause,
                    evidence=opened.evidence,
                    members=frozenset(episode) | {r.event_id for r in opened.evidence},
                    day=opened.day,
                    facts=opened.facts,
                )
            )
        episode, opened = None, None

    for i, g in enumerate(graded):
        above = g.day >= rules.worsening_first_day and g.severity > profile.baseline_severity
        pair = False
        nadir: int | None = None
        if i >= 1:
            p = graded[i - 1]
            nadir = nadir_before[i - 1]  # up to, not including, the first of the two
            pair = (
                nadir is not None
                and p.day >= rules.nadir_pair_first_day
                and g.day >= rules.nadir_pair_first_day
                and p.severity >= nadir + rules.nadir_margin
                and g.severity >= nadir + rules.nadir_margin
            )
        if not (above or pair):
            close()
            continue
        if episode is None:
            evidence = (g.report,) if above else (graded[i - 1].report, g.report)
            opened = AlertCandidate(
                kind="worsening",
                rule="worsening.above_baseline" if above else "worsening.nadir_plus_2",
                cause=str(g.report.event_id),
                evidence=evidence,
                members=frozenset(),
                day=g.day,
                facts={"severity": g.severity, "nadir": None if above else nadir},
            )
            episode = []
        episode.append(g.report.event_id)
    close()
    return out


def _recurrence(
    graded: Sequence[_Graded], flags: Sequence[bool], rules: RuleSettings
) -> list[AlertCandidate]:
    out: list[AlertCandidate] = []
    reaches = _reach_points(flags)
    for k, start in enumerate(reaches):
        end = reaches[k + 1] if k + 1 < len(reaches) else len(graded)
        for j in range(start + 1, end):
            g = graded[j]
            evidence: tuple[Report, ...]
            if g.severity >= rules.recurrence_single_severity:
                rule, evidence = "recurrence.single_ge2", (g.report,)
            elif (
                j - 1 > start
                and g.severity >= rules.recurrence_pair_severity
                and graded[j - 1].severity >= rules.recurrence_pair_severity
            ):
                rule, evidence = "recurrence.two_ge1", (graded[j - 1].report, g.report)
            else:
                continue
            out.append(
                AlertCandidate(
                    kind="recurrence",
                    rule=rule,
                    cause=str(graded[start].report.event_id),
                    evidence=evidence,
                    members=frozenset(r.event_id for r in evidence),
                    day=g.day,
                    facts={"severity": g.severity, "remission_day": graded[start].day},
                )
            )
            break
    return out


def _persistence(
    graded: Sequence[_Graded],
    profile: PatientEnrolledPayload,
    stream_time: dt.datetime,
    rules: RuleSettings,
) -> AlertCandidate | None:
    """The first instant at which: day ≥ 183, and the latest report (day ≥ 152) ≥ 1.

    The condition can only become true at the midnight that starts day 183 (judged on the
    reports before it: the clock rule) or at a report (the report rule)."""
    boundary = day_start(profile.surgery_date, rules.persistence_day, profile.timezone)

    def qualifies(g: _Graded) -> bool:
        return (
            g.day >= rules.persistence_recent_day and g.severity >= rules.persistence_min_severity
        )

    if boundary <= stream_time:
        before = [g for g in graded if g.report.occurred_at < boundary]
        if before and qualifies(before[-1]):
            latest = before[-1]
            return AlertCandidate(
                kind="six_month_persistence",
                rule="six_month_persistence.clock",
                cause=f"day{rules.persistence_day}",
                evidence=(latest.report,),
                members=frozenset({latest.report.event_id}),
                day=rules.persistence_day,
                facts={"severity": latest.severity, "latest_day": latest.day},
            )
    for g in graded:
        if g.day >= rules.persistence_day and qualifies(g):
            return AlertCandidate(
                kind="six_month_persistence",
                rule="six_month_persistence.report",
                cause=str(g.report.event_id),
                evidence=(g.report,),
                members=frozenset({g.report.event_id}),
                day=g.day,
                facts={"severity": g.severity, "latest_day": g.day},
            )
    return None


def history_alerts(
    state: PatientState, rules: RuleSettings = DEFAULT_RULES
) -> tuple[AlertCandidate, ...]:
    """The report-driven alerts a replay of the ordered history raises (lost to follow-up,
    which depends on the prompts sent, is time-driven and not among them)."""
    profile = state.profile
    if profile is None or state.stream_time is None:
        return ()
    out: list[AlertCandidate] = []
    for r in state.reports:
        found = findings(r.note)  # only reports with a note pay for this
        if found:
            out.append(
                AlertCandidate(
                    kind="red_flag",
                    rule="red_flag.note",
                    cause=str(r.event_id),
                    evidence=(r,),
                    members=frozenset({r.event_id}),
                    day=day_number(profile.surgery_date, r.occurred_at, profile.timezone),
                    facts={
                        "severity": r.severity,
                        "flags": ", ".join(f.flag for f in found),
                        # the evidence in the patient's words: category: matched words
                        "matched": "; ".join(f"{f.flag}: {f.words}" for f in found),
                    },
                )
            )
    graded = _graded(state.reports, profile)
    out.extend(_worsening(graded, profile, rules))
    out.extend(_recurrence(graded, _remission_flags(graded, profile, rules), rules))
    persistence = _persistence(graded, profile, state.stream_time, rules)
    if persistence is not None:
        out.append(persistence)
    return tuple(out)


def _covered(candidate: AlertCandidate, alerts: Iterable[Alert]) -> bool:
    for a in alerts:
        if a.kind != candidate.kind:
            continue
        if candidate.kind == "six_month_persistence":  # at most once per patient
            return True
        if a.cause == candidate.cause:
            return True
        if candidate.kind == "worsening":
            # once per episode: the alert covers the episode its triggering report is in
            # (a shared report alone is not enough: a late report can split an episode)
            if a.cause in candidate.member_ids:
                return True
        elif not candidate.members.isdisjoint(a.evidence):
            return True
    return False


def alerts_view(state: PatientState) -> list[dict[str, object]]:
    """The read API's ``alerts``: ``{kind, rule, raised_at, evidence: [event_id…]}``."""
    return [
        {
            "kind": a.kind,
            "rule": a.rule,
            "raised_at": a.raised_at.isoformat().replace("+00:00", "Z"),
            "evidence": [str(e) for e in a.evidence],
        }
        for a in state.alerts
    ]


# --- decide ---------------------------------------------------------------------------


class _Run:
    """The state and commands of one ``decide`` call (local, never shared)."""

    def __init__(self, state: PatientState, now: dt.datetime, rules: RuleSettings) -> None:
        self.state = state
        self.now = now
        self.rules = rules
        self.commands: list[Notify] = []

    @property
    def profile(self) -> PatientEnrolledPayload:
        assert self.state.profile is not None
        return self.state.profile

    def update(self, **changes: object) -> None:
        self.state = self.state.model_copy(update=changes)

    def key(self, kind: str, cause: str) -> str:
        return f"{self.state.patient_id}:{kind}:{cause}"

    def emit(self, cmd: Notify) -> bool:
        if cmd.dedupe_key in self.state.emitted:
            return False
        self.update(emitted=self.state.emitted | {cmd.dedupe_key})
        self.commands.append(cmd)
        return True

    def to_patient(
        self,
        kind: NotificationKind,
        cause: str,
        at: dt.datetime,
        facts: dict[str, str | int | None],
        *,
        defer_to: dt.time | None,
        evidence: tuple[uuid.UUID, ...] = (),
        rule: str | None = None,
    ) -> bool:
        p = self.profile
        due = at if defer_to is None else _out_of_quiet_hours(at, p.timezone, defer_to, self.rules)
        return self.emit(
            Notify(
                dedupe_key=self.key(kind, cause),
                kind=kind,
                audience="patient",
                urgency="routine",
                to=p.phone,
                language=p.language,
                timezone=p.timezone,
                due_at=due,
                facts={"patient_id": self.state.patient_id, **facts},
                evidence=evidence,
                rule=rule,
            )
        )

    def raise_alert(
        self,
        kind: AlertKind,
        rule: str,
        cause: str,
        evidence: tuple[Report, ...],
        day: int,
        raised_at: dt.datetime,
        at: dt.datetime,
        facts: dict[str, str | int | None],
    ) -> None:
        p = self.profile
        team_tz = p.care_team.timezone or p.timezone
        urgency = ALERT_URGENCY[kind]
        due = at if urgency == "urgent" else _into_day_hours(at, team_tz, self.rules)
        key = self.key(kind, cause)
        summary = "; ".join(
            f"day {day_number(p.surgery_date, r.occurred_at, p.timezone)}: "
            f"{'note' if r.severity is None else r.severity}"
            for r in evidence
        )
        all_facts: dict[str, str | int | None] = {
            "patient_id": self.state.patient_id,
            "day": day,
            "baseline_severity": p.baseline_severity,
            "rule": rule,
            "evidence": summary or None,
            **facts,
        }
        ids = tuple(r.event_id for r in evidence)
        sent = self.emit(
            Notify(
                dedupe_key=key,
                kind=kind,
                audience="care_team",
                urgency=urgency,
                to=p.care_team.on_call,
                backup_to=p.care_team.backup if urgency == "urgent" else None,
                language=p.language,
                timezone=team_tz,
                due_at=due,
                facts=all_facts,
                evidence=ids,
                rule=rule,
            )
        )
        if not sent:
            return
        alert = Alert(
            kind=kind, rule=rule, raised_at=raised_at, evidence=ids, cause=cause, dedupe_key=key
        )
        self.update(alerts=(*self.state.alerts, alert))
        self.to_patient(
            "care_team_notified",
            f"{kind}:{cause}",
            at,
            {"day": day, "alert_kind": kind, "rule": rule, "urgency": urgency},
            defer_to=None if kind == "red_flag" else self.rules.deferred_to,
            evidence=ids,
            rule=rule,
        )


def decide(
    state: PatientState, event: Input, now: dt.datetime, rules: RuleSettings = DEFAULT_RULES
) -> Decision:
    """Fold one input into the state at ``now`` and say what to send."""
    now = _utc(now)
    new_report: Report | None = None
    if isinstance(event, Reported):
        new_report = event.report
        if any(r.event_id == new_report.event_id for r in state.reports):
            return Decision(state)  # a redelivered or replayed report changes nothing
        reports = tuple(
            sorted((*state.reports, new_report), key=lambda r: (r.occurred_at, str(r.event_id)))
        )
        state = state.model_copy(update={"reports": reports})
    instants = [now]
    if state.stream_time is not None:
        instants.append(state.stream_time)
    if new_report is not None:
        instants.append(new_report.occurred_at)
    target = max(instants)
    run = _Run(state.model_copy(update={"stream_time": target}), now, rules)
    if run.state.profile is not None and run.state.timers_done_until is None:
        run.update(timers_done_until=target)  # a state stored before timers existed
    if run.state.profile is not None:
        _advance(run, target)
    if isinstance(event, Enrolled):
        _enroll(run, event.profile, target)
    elif isinstance(event, ConsentUpdated):
        run.update(sms_consent=event.sms_consent)
    if run.state.profile is not None:
        _evaluate(run, target, new_report)
    return Decision(run.state, tuple(run.commands))


def _enroll(run: _Run, profile: PatientEnrolledPayload, at: dt.datetime) -> None:
    previous = run.state.profile
    if previous is None:
        run.update(profile=profile, sms_consent=profile.sms_consent, timers_done_until=at)
    elif profile.sms_consent != previous.sms_consent:
        run.update(profile=profile, sms_consent=profile.sms_consent)
    else:
        run.update(profile=profile)


def _evaluate(run: _Run, at: dt.datetime, new_report: Report | None) -> None:
    candidates = history_alerts(run.state, run.rules)
    for c in candidates:
        if not _covered(c, run.state.alerts):
            run.raise_alert(c.kind, c.rule, c.cause, c.evidence, c.day, at, at, c.facts)
    if new_report is not None:
        alerting = frozenset().union(*(c.members for c in candidates))
        _reassure(run, new_report, alerting, at)
    _congratulate(run, at)


def _reassure(run: _Run, report: Report, alerting: frozenset[uuid.UUID], at: dt.datetime) -> None:
    p, rules = run.profile, run.rules
    day = day_number(p.surgery_date, report.occurred_at, p.timezone)
    last = run.state.last_reassurance_day
    # "At most one per 14 days" counts calendar days, so DST never shortens the span; a late
    # report from before the last reassurance is within the span too.
    if (
        report.severity is None
        or report.severity < 1
        or not rules.reassurance_first_day <= day <= rules.reassurance_last_day
        or report.event_id in alerting
        or (last is not None and day - last < rules.reassurance_interval_days)
    ):
        return
    sent = run.to_patient(
        "reassurance",
        str(report.event_id),
        at,
        {"day": day, "severity": report.severity, "baseline_severity": p.baseline_severity},
        defer_to=rules.deferred_to,
        evidence=(report.event_id,),
    )
    if sent:
        run.update(last_reassurance_day=day)


def _congratulate(run: _Run, at: dt.datetime) -> None:
    if run.state.congratulated or phase_of(run.state, run.rules) != "remission":
        return
    p = run.profile
    graded = _graded(run.state.reports, p)
    reach = graded[_reach_points(_remission_flags(graded, p, run.rules))[-1]]
    run_first = reach
    for g in reversed(graded):
        if g.day == run.rules.remission_ignored_day:
            continue
        if g.severity != 0:
            break
        run_first = g
    run.to_patient(
        "remission_congrats",
        str(reach.report.event_id),
        at,
        {"day": day_number(p.surgery_date, at, p.timezone), "since_day": run_first.day},
        defer_to=run.rules.deferred_to,
        evidence=(reach.report.event_id,),
    )
    run.update(congratulated=True)


# --- timers ---------------------------------------------------------------------------


class _Timer(NamedTuple):
    at: dt.datetime
    order: int  # at one instant: lost to follow-up, then the prompt, then completion
    kind: Literal["lost_to_follow_up", "prompt", "complete", "boundary"]
    day: int


def _silence(
    state: PatientState, after: dt.datetime, rules: RuleSettings
) -> tuple[list[PromptRecord], dt.datetime] | None:
    """The counted prompts since the last report at or before ``after``, and the deadline
    48 h after the third of them (None while fewer than three)."""
    last_report = None
    for r in state.reports:
        if r.occurred_at <= after:
            last_report = r.occurred_at
    silent = [p for p in state.prompts if p.counted and (last_report is None or p.at > last_report)]
    if len(silent) < rules.lost_to_follow_up_prompts:
        return None
    return silent, silent[rules.lost_to_follow_up_prompts - 1].at + rules.lost_to_follow_up_wait


def _next_timers(state: PatientState, after: dt.datetime, rules: RuleSettings) -> list[_Timer]:
    """The pending timers at the earliest instant after ``after`` ([] when none)."""
    profile = state.profile
    if profile is None:
        return []
    timers: list[_Timer] = []
    after_day = day_number(profile.surgery_date, after, profile.timezone)
    for day in rules.prompt_days:
        if day < after_day:
            continue
        at = _slot(profile, day, rules.prompt_time)
        if at > after:
            timers.append(_Timer(at, 1, "prompt", day))
            break
    complete_day = rules.monitoring_complete_day
    complete_at = _slot(profile, complete_day, rules.monitoring_complete_time)
    complete_key = f"{state.patient_id}:monitoring_complete:day{complete_day}"
    if complete_day >= after_day and complete_at > after and complete_key not in state.emitted:
        timers.append(_Timer(complete_at, 2, "complete", complete_day))
    for day in (
        0,
        rules.early_postop_last_day + 1,
        rules.expected_window_last_day + 1,
        rules.persistence_day,
        complete_day,
    ):
        if day <= after_day:
            continue
        at = day_start(profile.surgery_date, day, profile.timezone)
        if at > after:
            timers.append(_Timer(at, 3, "boundary", day))
    silence = _silence(state, after, rules)
    if silence is not None:
        prompts, deadline = silence
        key = f"{state.patient_id}:lost_to_follow_up:day{prompts[0].day}"
        broken = any(after < r.occurred_at <= deadline for r in state.reports)
        if deadline > after and not broken and key not in state.emitted:
            timers.append(_Timer(deadline, 0, "lost_to_follow_up", prompts[0].day))
    if not timers:
        return []
    first = min(t.at for t in timers)
    return sorted(t for t in timers if t.at == first)


def next_due(state: PatientState, rules: RuleSettings = DEFAULT_RULES) -> dt.datetime | None:
    """The earliest instant at which a ``ClockTicked`` can change something; None if never.

    Exact: the earliest pending timer (prompt slot, lost-to-follow-up deadline, day-365
    completion, or a phase-changing local midnight). After ``decide`` at ``now`` it is
    always later than ``now``."""
    if state.profile is None or state.timers_done_until is None:
        return None
    timers = _next_timers(state, state.timers_done_until, rules)
    return timers[0].at if timers else None


def _advance(run: _Run, target: dt.datetime) -> None:
    cursor = run.state.timers_done_until
    if cursor is None:
        return
    while True:
        timers = _next_timers(run.state, cursor, run.rules)
        if not timers or timers[0].at > target:
            break
        for timer in timers:
            if timer.kind == "prompt" and _stale(run, timer, target):
                _skip_prompt(run, timer)
            elif timer.kind == "prompt":
                _prompt(run, timer)
            elif timer.kind == "lost_to_follow_up":
                _lost_to_follow_up(run, timer)
            elif timer.kind == "complete":
                _complete(run, timer)
        cursor = timers[0].at
        run.update(timers_done_until=cursor)
    run.update(timers_done_until=max(cursor, target))


def _next_prompt_at(
    state: PatientState, after: dt.datetime, rules: RuleSettings
) -> dt.datetime | None:
    """The first prompt slot strictly after ``after`` (None after the last one)."""
    profile = state.profile
    assert profile is not None
    after_day = day_number(profile.surgery_date, after, profile.timezone)
    for day in rules.prompt_days:
        if day < after_day:
            continue
        at = _slot(profile, day, rules.prompt_time)
        if at > after:
            return at
    return None


def _stale(run: _Run, timer: _Timer, target: dt.datetime) -> bool:
    """Catch-up: a prompt slot passed together with a later one (both at or before the
    stream time this decision runs to) is stale, and skipped; the latest is always sent.
    (The page's "more than 12 hours overdue" clause adds nothing here: such a prompt is
    either the latest, and sent, or has a later slot due with it, and is stale.) Only
    prompts are ever stale: alerts, reassurance and the day-183 check are raised late."""
    later = _next_prompt_at(run.state, timer.at, run.rules)
    return later is not None and later <= target


def _skip_prompt(run: _Run, timer: _Timer) -> None:
    """Record a stale prompt as skipped: never sent, and not a "sent" prompt for lost to
    follow-up or the 30-day spacing in remission."""
    if run.key("checkin_prompt", f"day{timer.day}") in run.state.emitted or any(
        q.day == timer.day for q in run.state.prompts
    ):
        return
    record = PromptRecord(day=timer.day, at=timer.at, counted=False, skipped=True)
    run.update(prompts=(*run.state.prompts, record))


def _prompt(run: _Run, timer: _Timer) -> None:
    p, rules, t = run.profile, run.rules, timer.at
    if run.key("checkin_prompt", f"day{timer.day}") in run.state.emitted or any(
        q.day == timer.day and q.skipped for q in run.state.prompts
    ):
        return
    history = [r for r in run.state.reports if r.occurred_at <= t]
    if any(r.occurred_at >= t - rules.prompt_skip_after_report for r in history):
        return
    phase = _phase_at(p, history, t, rules)
    if phase == "monitoring_complete":
        return
    sent = [q for q in run.state.prompts if q.counted]
    if (
        phase == "remission"
        and sent
        and timer.day - sent[-1].day < rules.remission_prompt_interval_days
    ):
        return
    emitted = run.to_patient(
        "checkin_prompt",
        f"day{timer.day}",
        max(t, run.now),
        {"day": timer.day, "phase": phase},
        defer_to=rules.prompt_deferred_to,
    )
    if emitted:
        record = PromptRecord(day=timer.day, at=t, counted=run.state.sms_consent is True)
        run.update(prompts=(*run.state.prompts, record))


def _lost_to_follow_up(run: _Run, timer: _Timer) -> None:
    p = run.profile
    silence = _silence(run.state, timer.at, run.rules)
    if silence is None:
        return
    prompts, _ = silence
    last = [r for r in run.state.reports if r.occurred_at <= timer.at]
    run.raise_alert(
        "lost_to_follow_up",
        "lost_to_follow_up.three_prompts",
        f"day{timer.day}",
        (),
        day_number(p.surgery_date, timer.at, p.timezone),
        timer.at,
        max(timer.at, run.now),
        {
            "prompts": len(prompts),
            "first_prompt_day": prompts[0].day,
            "last_prompt_day": prompts[-1].day,
            "last_report_day": (
                day_number(p.surgery_date, last[-1].occurred_at, p.timezone) if last else None
            ),
        },
    )


def _complete(run: _Run, timer: _Timer) -> None:
    run.to_patient(
        "monitoring_complete",
        f"day{timer.day}",
        max(timer.at, run.now),
        {"day": timer.day},
        defer_to=run.rules.deferred_to,
    )
