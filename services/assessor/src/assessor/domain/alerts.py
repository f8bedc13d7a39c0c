"""The report-driven care-team alerts, replayed over the whole ordered history.

Red flags, worsening episodes, recurrence per remission episode and six-month persistence
(whose "first clock time" part is the local midnight of day 183, judged on the reports
before it). An alert is raised unless an alert already raised *covers* it (same kind and
same cause or a shared report; persistence: any), so a late report inserted in place raises
what the ordered history calls for and nothing is withdrawn or raised twice. These alerts
stay active after day 365 (a red flag is a red flag). Lost to follow-up depends on the
prompts sent, so it is time-driven and lives in ``schedule``.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from assessor.domain.calendar import day_start
from assessor.domain.model import Alert, AlertKind, PatientState, Report
from assessor.domain.phases import Graded, graded, reach_points, remission_flags, report_days
from assessor.domain.redflags import findings
from assessor.domain.settings import DEFAULT_RULES, RuleSettings
from shared.events import PatientEnrolledPayload
from shared.timefmt import utc_z


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
    history: Sequence[Graded], profile: PatientEnrolledPayload, rules: RuleSettings
) -> list[AlertCandidate]:
    """(a) above baseline from day 4, or (b) two consecutive reports ≥ nadir + 2 from day 30;
    one alert per episode (the run of reports that keep meeting either condition)."""
    out: list[AlertCandidate] = []
    episode: list[uuid.UUID] | None = None
    opened: AlertCandidate | None = None
    # nadir_before[j]: lowest severity among history[:j] on day >= nadir_first_day (or None)
    nadir_before: list[int | None] = [None]
    for g in history:
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

    for i, g in enumerate(history):
        above = g.day >= rules.worsening_first_day and g.severity > profile.baseline_severity
        pair = False
        nadir: int | None = None
        if i >= 1:
            p = history[i - 1]
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
            evidence = (g.report,) if above else (history[i - 1].report, g.report)
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
    history: Sequence[Graded], flags: Sequence[bool], rules: RuleSettings
) -> list[AlertCandidate]:
    """After each remission is reached: one report ≥ 2, or two consecutive ≥ 1 (once per
    remission episode)."""
    out: list[AlertCandidate] = []
    reaches = reach_points(flags)
    for k, start in enumerate(reaches):
        end = reaches[k + 1] if k + 1 < len(reaches) else len(history)
        for j in range(start + 1, end):
            g = history[j]
            evidence: tuple[Report, ...]
            if g.severity >= rules.recurrence_single_severity:
                rule, evidence = "recurrence.single_ge2", (g.report,)
            elif (
                j - 1 > start
                and g.severity >= rules.recurrence_pair_severity
                and history[j - 1].severity >= rules.recurrence_pair_severity
            ):
                rule, evidence = "recurrence.two_ge1", (history[j - 1].report, g.report)
            else:
                continue
            out.append(
                AlertCandidate(
                    kind="recurrence",
                    rule=rule,
                    cause=str(history[start].report.event_id),
                    evidence=evidence,
                    members=frozenset(r.event_id for r in evidence),
                    day=g.day,
                    facts={"severity": g.severity, "remission_day": history[start].day},
                )
            )
            break
    return out


def _persistence(
    history: Sequence[Graded],
    profile: PatientEnrolledPayload,
    stream_time: dt.datetime,
    rules: RuleSettings,
) -> AlertCandidate | None:
    """The first instant at which: day ≥ 183, and the latest report (day ≥ 152) ≥ 1.

    The condition can only become true at the midnight that starts day 183 (judged on the
    reports before it: the clock rule) or at a report (the report rule)."""
    boundary = day_start(profile.surgery_date, rules.persistence_day, profile.timezone)

    def qualifies(g: Graded) -> bool:
        return (
            g.day >= rules.persistence_recent_day and g.severity >= rules.persistence_min_severity
        )

    if boundary <= stream_time:
        before = [g for g in history if g.report.occurred_at < boundary]
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
    for g in history:
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
    state: PatientState,
    rules: RuleSettings = DEFAULT_RULES,
    days: Sequence[int] | None = None,
) -> tuple[AlertCandidate, ...]:
    """The report-driven alerts a replay of the ordered history raises (lost to follow-up,
    which depends on the prompts sent, is time-driven and not among them). ``days``: the
    day of each report, when the caller already has them."""
    profile = state.profile
    if profile is None or state.stream_time is None:
        return ()
    if days is None:
        days = report_days(state.reports, profile)
    out: list[AlertCandidate] = []
    for r, day in zip(state.reports, days, strict=True):
        found = findings(r.note)  # only reports with a note pay for this
        if found:
            out.append(
                AlertCandidate(
                    kind="red_flag",
                    rule="red_flag.note",
                    cause=str(r.event_id),
                    evidence=(r,),
                    members=frozenset({r.event_id}),
                    day=day,
                    facts={
                        "severity": r.severity,
                        "flags": ", ".join(f.flag for f in found),
                        # the evidence in the patient's words: category: matched words
                        "matched": "; ".join(f"{f.flag}: {f.words}" for f in found),
                    },
                )
            )
    history = graded(state.reports, profile, days)
    out.extend(_worsening(history, profile, rules))
    out.extend(_recurrence(history, remission_flags(history, profile, rules), rules))
    persistence = _persistence(history, profile, state.stream_time, rules)
    if persistence is not None:
        out.append(persistence)
    return tuple(out)


def covered(candidate: AlertCandidate, alerts: Iterable[Alert]) -> bool:
    """Whether an alert already raised covers ``candidate`` (then it is not raised again)."""
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
            "raised_at": utc_z(a.raised_at),
            "evidence": [str(e) for e in a.evidence],
        }
        for a in state.alerts
    ]
