"""Phases and remission, judged on the graded history (reports with a severity).

A phase is decided at an instant from the reports before it: ``monitoring_complete`` from
day 365, else ``remission`` while the remission condition holds, else by day (``pre_op``,
``early_postop`` to day 3, ``expected_window`` to day 182), then ``persistent`` when the
latest report (day ≥ 152) is ≥ 1 on day ≥ 183, else ``late_follow_up``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from assessor.domain.calendar import day_number, wall
from assessor.domain.model import PatientState, Phase, Report
from assessor.domain.settings import DEFAULT_RULES, RuleSettings
from shared.events import PatientEnrolledPayload


class Graded(NamedTuple):
    report: Report
    day: int
    severity: int


def report_days(reports: Sequence[Report], profile: PatientEnrolledPayload) -> tuple[int, ...]:
    """The patient's day of each report, in order."""
    return tuple(day_number(profile.surgery_date, r.occurred_at, profile.timezone) for r in reports)


def graded(
    reports: Sequence[Report],
    profile: PatientEnrolledPayload,
    days: Sequence[int] | None = None,
) -> list[Graded]:
    """The graded reports with their days (``days``: ``report_days`` when already known).

    A fresh list each call: nothing is memoized, so no caller can change another's answer."""
    if days is None:
        days = report_days(reports, profile)
    return [
        Graded(r, day, r.severity)
        for r, day in zip(reports, days, strict=True)
        if r.severity is not None
    ]


def remission_flags(
    history: Sequence[Graded], profile: PatientEnrolledPayload, rules: RuleSettings
) -> list[bool]:
    """For each graded report: does the remission condition hold with it as the latest?

    A run of ≥ 2 zeros spanning ≥ 14 days of wall clock from day ≥ 1; reports on surgery day
    neither start nor break a run."""
    flags: list[bool] = []
    run_start: int | None = None
    for i, g in enumerate(history):
        if g.day == rules.remission_ignored_day:
            flags.append(False)  # surgery day: neither starts nor breaks a run
            continue
        if g.severity != 0:
            run_start = None
            flags.append(False)
            continue
        if run_start is None:
            run_start = i
        first = history[run_start]
        span = wall(g.report.occurred_at, profile.timezone) - wall(
            first.report.occurred_at, profile.timezone
        )
        flags.append(
            i - run_start + 1 >= rules.remission_min_reports
            and span >= rules.remission_span
            and first.day >= rules.remission_first_day
        )
    return flags


def reach_points(flags: Sequence[bool]) -> list[int]:
    """Indexes of the graded reports at which remission was reached (episode starts)."""
    return [i for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1])]


def in_remission(state: PatientState, rules: RuleSettings = DEFAULT_RULES) -> bool:
    """Latest report 0, and the run of zeros ending with it spans ≥ 14 days from day ≥ 1
    (reports on day 0 are ignored: they neither start nor break the run)."""
    if state.profile is None:
        return False
    history = graded(state.reports, state.profile)
    return bool(history) and remission_flags(history, state.profile, rules)[-1]


def phase_at(
    profile: PatientEnrolledPayload,
    history: Sequence[Graded],
    instant: dt.datetime,
    rules: RuleSettings,
) -> Phase:
    """The phase at ``instant``, judged on ``history`` (the graded reports before it)."""
    day = day_number(profile.surgery_date, instant, profile.timezone)
    if day >= rules.monitoring_complete_day:
        return "monitoring_complete"
    if history and remission_flags(history, profile, rules)[-1]:
        return "remission"
    if day < 0:
        return "pre_op"
    if day <= rules.early_postop_last_day:
        return "early_postop"
    if day <= rules.expected_window_last_day:
        return "expected_window"
    if day >= rules.persistence_day and history:
        latest = history[-1]
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
    return phase_at(state.profile, graded(state.reports, state.profile), state.stream_time, rules)
