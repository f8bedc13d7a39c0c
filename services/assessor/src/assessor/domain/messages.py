"""How one decision sends: to the patient out of quiet hours, to the care team by urgency.

``Run`` holds the state and commands of one ``decide`` call (local, never shared); every
command goes through ``Run.emit``, which drops a dedupe key already in ``emitted``, so
nothing is ever sent twice. Every alert raised also tells the patient
(``care_team_notified``).

While SMS consent is false the rules still decide every patient message; the notifier
checks consent at send time and records them as suppressed. Such messages are spent: a
suppressed reassurance still starts its 14 days, a suppressed congratulation is not
repeated. Patient messages other than ``care_team_notified`` stop once monitoring is
complete (reassurance ends at day 182, prompts at 362, congratulations need ``remission``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from assessor.domain.calendar import day_number, into_day_hours, out_of_quiet_hours
from assessor.domain.model import Alert, AlertKind, PatientState, Report
from assessor.domain.phases import Graded, reach_points, remission_flags
from assessor.domain.settings import RuleSettings
from shared.events import NotificationKind, PatientEnrolledPayload, SendNotificationPayload
from shared.notification_kinds import KINDS


class Run:
    """The state and commands of one ``decide`` call (local, never shared)."""

    def __init__(self, state: PatientState, now: dt.datetime, rules: RuleSettings) -> None:
        self.state = state
        self.now = now
        self.rules = rules
        self.commands: list[SendNotificationPayload] = []

    @property
    def profile(self) -> PatientEnrolledPayload:
        assert self.state.profile is not None
        return self.state.profile

    def update(self, **changes: object) -> None:
        self.state = self.state.model_copy(update=changes)

    def key(self, kind: str, cause: str) -> str:
        return f"{self.state.patient_id}:{kind}:{cause}"

    def emit(self, cmd: SendNotificationPayload) -> bool:
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
        due = at if defer_to is None else out_of_quiet_hours(at, p.timezone, defer_to, self.rules)
        spec = KINDS[kind]
        return self.emit(
            SendNotificationPayload(
                dedupe_key=self.key(kind, cause),
                kind=kind,
                audience=spec.audience,
                urgency=spec.urgency,
                to=p.phone,
                language=p.language,
                timezone=p.timezone,
                due_at=due,
                facts={"patient_id": self.state.patient_id, **facts},
                evidence=evidence,
                rule=rule,
                team=p.care_team.team,
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
        """Page the care team (urgent: now, to on-call and backup; routine: in day hours, in
        the care team's zone or the patient's) and tell the patient it was done."""
        p = self.profile
        team_tz = p.care_team.timezone or p.timezone
        spec = KINDS[kind]
        urgency = spec.urgency
        due = at if urgency == "urgent" else into_day_hours(at, team_tz, self.rules)
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
            SendNotificationPayload(
                dedupe_key=key,
                kind=kind,
                audience=spec.audience,
                urgency=urgency,
                to=p.care_team.on_call,
                backup_to=p.care_team.backup if spec.pages else None,
                language=p.language,
                timezone=team_tz,
                due_at=due,
                facts=all_facts,
                evidence=ids,
                rule=rule,
                team=p.care_team.team,
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


def reassure(
    run: Run, report: Report, day: int, alerting: frozenset[uuid.UUID], at: dt.datetime
) -> None:
    """Reassurance for a report ≥ 1 on days 1–182 that raised no care-team alert (one that
    triggered an alert, or belongs to a worsening episode already alerted, gets none), at
    most one per 14 calendar days. ``day`` is the report's day."""
    p, rules = run.profile, run.rules
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


def congratulate(run: Run, history: Sequence[Graded], at: dt.datetime) -> None:
    """``remission_congrats`` the first time the phase is ``remission`` (the caller checks
    the phase; ``history`` is the graded history it judged it on)."""
    if run.state.congratulated:
        return
    p = run.profile
    reach = history[reach_points(remission_flags(history, p, run.rules))[-1]]
    run_first = reach
    for g in reversed(history):
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
