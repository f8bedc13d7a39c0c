"""``decide(state, input, now) -> Decision``: the one entry point, composing the rest.

How one call runs:

1. A report whose event id was already applied changes nothing (same state, no commands).
   A new report is inserted in ``occurred_at`` order (ties by event id), so a late report
   takes its place in the history.
2. Stream time becomes the latest of the previous stream time, ``now`` and the report's
   ``occurred_at``.
3. Timers due up to the new stream time fire in time order (``schedule``).
4. The report-driven alerts are replayed over the whole ordered history and the ones not yet
   covered are raised (``alerts``).
5. Patient messages tied to the input: reassurance for the new report, and
   ``remission_congrats`` the first time the phase is ``remission`` (``messages``).

What "the final state is independent of arrival order" means, precisely (the property
tests check exactly this): for one enrollment and the same reports delivered in any order
(then the same clock tick), the final ``reports``, ``stream_time``, ``phase_of`` and
``in_remission`` are equal, and the raised alerts cover every ``history_alerts`` candidate;
red flags are exactly one per flagged report. Delivered in ``occurred_at`` order, each at
its ``occurred_at``, the report-driven alerts raised are exactly the candidates; out of
order there may be more (a page already sent is never unsent), never fewer. Time-driven
decisions and patient messages reflect what was known when their time came.
"""

from __future__ import annotations

import datetime as dt

from assessor.domain import model
from assessor.domain.alerts import covered, history_alerts
from assessor.domain.calendar import day_number, utc
from assessor.domain.messages import Run, congratulate, reassure
from assessor.domain.model import Decision, PatientState, Phase, Report
from assessor.domain.phases import graded, phase_at, report_days
from assessor.domain.schedule import advance, next_due
from assessor.domain.settings import DEFAULT_RULES, RuleSettings
from shared.events import PatientEnrolledPayload, SendNotificationPayload


def decide(
    state: PatientState, event: model.Input, now: dt.datetime, rules: RuleSettings = DEFAULT_RULES
) -> Decision:
    """Fold one input into the state at ``now`` and say what to send."""
    now = utc(now)
    profile = state.profile
    # Each report's day, once: for the phase before this input, then (with the new report
    # in its place) for the alerts, the phase after and the read model.
    days = () if profile is None else report_days(state.reports, profile)
    previous = _phase_at_stream_time(state, days, rules)
    new_report: Report | None = None
    if isinstance(event, model.Reported):
        new_report = event.report
        if any(r.event_id == new_report.event_id for r in state.reports):
            # a redelivered or replayed report changes nothing
            return _decision(state, (), previous, previous, rules, days)
        reports = tuple(
            sorted((*state.reports, new_report), key=lambda r: (r.occurred_at, str(r.event_id)))
        )
        state = state.model_copy(update={"reports": reports})
        if profile is not None:
            at = next(i for i, r in enumerate(reports) if r is new_report)
            day = day_number(profile.surgery_date, new_report.occurred_at, profile.timezone)
            days = (*days[:at], day, *days[at:])
    instants = [now]
    if state.stream_time is not None:
        instants.append(state.stream_time)
    if new_report is not None:
        instants.append(new_report.occurred_at)
    target = max(instants)
    run = Run(state.model_copy(update={"stream_time": target}), now, rules)
    if run.state.profile is not None and run.state.timers_done_until is None:
        run.update(timers_done_until=target)  # a state stored before timers existed
    if run.state.profile is not None:
        advance(run, target)
    if isinstance(event, model.Enrolled):
        _enroll(run, event.profile, target)
    elif isinstance(event, model.ConsentUpdated):
        run.update(sms_consent=event.sms_consent)
    if run.state.profile is None:
        return _decision(run.state, tuple(run.commands), previous, None, rules)
    if run.state.profile is not profile:  # enrolled, or the profile changed: days move
        days = report_days(run.state.reports, run.profile)
    phase = _evaluate(run, target, new_report, days)
    return _decision(run.state, tuple(run.commands), previous, phase, rules, days)


def _decision(
    state: PatientState,
    commands: tuple[SendNotificationPayload, ...],
    previous: Phase | None,
    phase: Phase | None,
    rules: RuleSettings,
    days: tuple[int, ...] | None = None,
) -> Decision:
    if days is None:
        days = () if state.profile is None else report_days(state.reports, state.profile)
    return Decision(
        state,
        commands,
        phase=phase,
        previous_phase=previous,
        report_days=days,
        next_due=next_due(state, rules),
    )


def _phase_at_stream_time(
    state: PatientState, days: tuple[int, ...], rules: RuleSettings
) -> Phase | None:
    """``phase_of(state)``, with the reports' days already known."""
    if state.profile is None or state.stream_time is None:
        return None
    history = graded(state.reports, state.profile, days)
    return phase_at(state.profile, history, state.stream_time, rules)


def _enroll(run: Run, profile: PatientEnrolledPayload, at: dt.datetime) -> None:
    """The first enrollment sets consent; a later one changes it only when its
    ``sms_consent`` differs from the previous profile's (an edit cannot undo a STOP)."""
    previous = run.state.profile
    if previous is None:
        run.update(profile=profile, sms_consent=profile.sms_consent, timers_done_until=at)
    elif profile.sms_consent != previous.sms_consent:
        run.update(profile=profile, sms_consent=profile.sms_consent)
    else:
        run.update(profile=profile)


def _evaluate(run: Run, at: dt.datetime, new_report: Report | None, days: tuple[int, ...]) -> Phase:
    """Raise the alerts not yet covered, reassure, congratulate; the phase at ``at``."""
    candidates = history_alerts(run.state, run.rules, days)
    for c in candidates:
        if not covered(c, run.state.alerts):
            run.raise_alert(c.kind, c.rule, c.cause, c.evidence, c.day, at, at, c.facts)
    if new_report is not None:
        alerting = frozenset().union(*(c.members for c in candidates))
        p = run.profile
        day = day_number(p.surgery_date, new_report.occurred_at, p.timezone)
        reassure(run, new_report, day, alerting, at)
    history = graded(run.state.reports, run.profile, days)
    phase = phase_at(run.profile, history, at, run.rules)
    if phase == "remission":
        congratulate(run, history, at)
    return phase
