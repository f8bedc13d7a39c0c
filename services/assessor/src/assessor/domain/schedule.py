"""Timers: the check-in prompt calendar, lost to follow-up, day-365 completion, midnights.

Timers are processed in time order from ``timers_done_until`` up to the new stream time,
each *as if the clock had ticked exactly at its due time*: a timer at ``t`` sees the reports
with ``occurred_at <= t`` (a report at exactly ``t`` counts as before it), and ``next_due``
is exact: the earliest pending timer. Timers never fire for instants before the first
enrollment (no catch-up of prompts for a patient enrolled late); a changed surgery date
moves future slots, and a slot day whose key was already emitted is never prompted again.

Catch-up: when one decision passes several prompt slots (a ticker outage, a restart, a jump
of the simulated clock), only the latest is decided, at ``max(slot, now)`` and out of quiet
hours; the earlier ones are recorded in ``prompts`` as ``skipped`` (never sent, never
counted for lost to follow-up or the 30-day spacing, never prompted later). Every other
timer still fires, late. Prompts decided while opted out are not "sent" prompts: they
neither count towards lost to follow-up nor restart the 30-day spacing in remission.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, NamedTuple

from assessor.domain.calendar import day_number, day_start, slot
from assessor.domain.messages import Run
from assessor.domain.model import PatientState, PromptRecord
from assessor.domain.phases import graded, phase_at
from assessor.domain.settings import DEFAULT_RULES, RuleSettings


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


def _next_prompt(
    state: PatientState, after: dt.datetime, rules: RuleSettings
) -> tuple[dt.datetime, int] | None:
    """The first prompt slot strictly after ``after`` and its day (None after the last)."""
    profile = state.profile
    assert profile is not None
    after_day = day_number(profile.surgery_date, after, profile.timezone)
    for day in rules.prompt_days:
        if day < after_day:
            continue
        at = slot(profile, day, rules.prompt_time)
        if at > after:
            return at, day
    return None


def _next_timers(state: PatientState, after: dt.datetime, rules: RuleSettings) -> list[_Timer]:
    """The pending timers at the earliest instant after ``after`` ([] when none)."""
    profile = state.profile
    if profile is None:
        return []
    timers: list[_Timer] = []
    after_day = day_number(profile.surgery_date, after, profile.timezone)
    prompt = _next_prompt(state, after, rules)
    if prompt is not None:
        timers.append(_Timer(prompt[0], 1, "prompt", prompt[1]))
    complete_day = rules.monitoring_complete_day
    complete_at = slot(profile, complete_day, rules.monitoring_complete_time)
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


def advance(run: Run, target: dt.datetime) -> None:
    """Fire every timer due up to ``target``, in time order, each at its own due time."""
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


def _stale(run: Run, timer: _Timer, target: dt.datetime) -> bool:
    """Catch-up: a prompt slot passed together with a later one (both at or before the
    stream time this decision runs to) is stale, and skipped; the latest is always sent.
    (The page's "more than 12 hours overdue" clause adds nothing here: such a prompt is
    either the latest, and sent, or has a later slot due with it, and is stale.) Only
    prompts are ever stale: alerts, reassurance and the day-183 check are raised late."""
    later = _next_prompt(run.state, timer.at, run.rules)
    return later is not None and later[0] <= target


def _skip_prompt(run: Run, timer: _Timer) -> None:
    """Record a stale prompt as skipped: never sent, and not a "sent" prompt for lost to
    follow-up or the 30-day spacing in remission."""
    if run.key("checkin_prompt", f"day{timer.day}") in run.state.emitted or any(
        q.day == timer.day for q in run.state.prompts
    ):
        return
    record = PromptRecord(day=timer.day, at=timer.at, counted=False, skipped=True)
    run.update(prompts=(*run.state.prompts, record))


def _prompt(run: Run, timer: _Timer) -> None:
    """A check-in prompt at 10:00 on a slot day, unless a report came in the 24 hours before,
    monitoring is complete, or (in remission) the last sent prompt is under 30 days old."""
    p, rules, t = run.profile, run.rules, timer.at
    if run.key("checkin_prompt", f"day{timer.day}") in run.state.emitted or any(
        q.day == timer.day and q.skipped for q in run.state.prompts
    ):
        return
    history = [r for r in run.state.reports if r.occurred_at <= t]
    if any(r.occurred_at >= t - rules.prompt_skip_after_report for r in history):
        return
    phase = phase_at(p, graded(history, p), t, rules)
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


def _lost_to_follow_up(run: Run, timer: _Timer) -> None:
    """Routine alert 48 hours after the third counted prompt with no report since."""
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


def _complete(run: Run, timer: _Timer) -> None:
    run.to_patient(
        "monitoring_complete",
        f"day{timer.day}",
        max(timer.at, run.now),
        {"day": timer.day},
        defer_to=run.rules.deferred_to,
    )
