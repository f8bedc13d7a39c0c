"""Properties of the rules core over random courses (hypothesis).

* determinism: the same inputs give the same decisions and state;
* idempotence: a redelivered report changes nothing;
* arrival order: as ``assessor.domain`` defines it — the same reports in any order give the
  same reports, stream time, phase and remission, and the raised alerts cover every alert
  the ordered history calls for (red flags exactly); delivered in order, exactly those;
* no dedupe key is ever emitted twice, across a whole course with late and duplicate
  reports, consent changes and clock ticks driven by ``next_due``;
* ``next_due`` always lies after the stream time (no busy loop), one decision never sends
  two check-in prompts (catch-up), and a clock that ticks rarely raises the same
  report-driven alerts as one that ticks at every ``next_due``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from assessor.domain import (
    ClockTicked,
    ConsentUpdated,
    Enrolled,
    Input,
    PatientState,
    Report,
    Reported,
    decide,
    history_alerts,
    in_remission,
    next_due,
    phase_of,
)
from shared.events import SendNotificationPayload
from tests.unit.rules_kit import at_local, profile

TZS = ["America/Chicago", "Asia/Tokyo", "Pacific/Honolulu", "Europe/Berlin", "America/Los_Angeles"]
SURGERIES = [dt.date(2026, 3, 2), dt.date(2026, 10, 20), dt.date(2026, 1, 15)]
NOTES = [None, None, None, None, "ok", "severe headache", "tengo fiebre", "a bit better"]
SEVERITIES = [0, 0, 0, 1, 1, 2, 3, 4, None]
FAST = settings(max_examples=30, deadline=None)


@dataclass(frozen=True)
class Spec:
    tz: str
    surgery: dt.date
    baseline: int
    reports: tuple[Report, ...]
    delays: tuple[dt.timedelta, ...]  # recorded = occurred + delay
    consent_days: tuple[int, ...]  # consent flips at noon on these days

    def local(self, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
        return at_local(self.tz, self.surgery, day, hour, minute)

    @property
    def enrolled_at(self) -> dt.datetime:
        return self.local(-7, 9)

    @property
    def end(self) -> dt.datetime:
        return self.local(400)


@st.composite
def specs(draw: st.DrawFn, max_reports: int = 18, late: bool = True) -> Spec:
    tz = draw(st.sampled_from(TZS))
    surgery = draw(st.sampled_from(SURGERIES))
    n = draw(st.integers(0, max_reports))
    # clustered days make remission runs, episodes and pairs likelier than uniform ones
    anchor = draw(st.integers(-2, 370))
    reports = []
    for i in range(n):
        day = draw(st.one_of(st.integers(-2, 380), st.integers(anchor, anchor + 30)))
        hour, minute = draw(st.integers(0, 23)), draw(st.integers(1, 59))  # never :00
        severity = draw(st.sampled_from(SEVERITIES))
        note = draw(st.sampled_from(NOTES))
        if severity is None and note is None:
            note = "ok"
        reports.append(
            Report(
                event_id=uuid.UUID(int=i + 1),
                occurred_at=at_local(tz, surgery, day, hour, minute),
                severity=severity,
                note=note,
            )
        )
    delay = st.integers(0, 30 * 24 * 60) if late else st.just(0)
    delays = tuple(dt.timedelta(minutes=draw(delay) if draw(st.booleans()) else 0) for _ in reports)
    consent_days = tuple(sorted(draw(st.sets(st.integers(-1, 370), max_size=3))))
    return Spec(tz, surgery, draw(st.integers(1, 4)), tuple(reports), delays, consent_days)


def deliveries(
    spec: Spec, duplicates: frozenset[int] = frozenset()
) -> list[tuple[dt.datetime, Input]]:
    """Reports at their recorded time (duplicates redelivered a day later), consent flips."""
    out: list[tuple[dt.datetime, int, Input]] = []
    for i, (r, delay) in enumerate(zip(spec.reports, spec.delays, strict=True)):
        out.append((r.occurred_at + delay, 1, Reported(r)))
        if i in duplicates:
            out.append((r.occurred_at + delay + dt.timedelta(days=1), 2, Reported(r)))
    consent = True
    for day in spec.consent_days:
        consent = not consent
        out.append((spec.local(day), 0, ConsentUpdated(consent)))
    out.sort(key=lambda d: (d[0], d[1]))
    return [(now, inp) for now, _, inp in out]


@dataclass
class Played:
    state: PatientState
    commands: list[SendNotificationPayload]
    timed: list[
        tuple[dt.datetime, SendNotificationPayload]
    ]  # commands from ticks at next_due, with the tick


def play(
    spec: Spec,
    inputs: list[tuple[dt.datetime, Input]],
    tick: str = "fine",
    ticks: tuple[dt.datetime, ...] = (),
) -> Played:
    """Enroll, deliver ``inputs``; tick at every ``next_due`` ("fine"), only at ``ticks``
    ("sparse"), or not at all ("none"); then run to the end of the course."""
    state = decide(
        PatientState(patient_id="p-9"),
        Enrolled(profile(spec.tz, spec.surgery, spec.baseline)),
        spec.enrolled_at,
    ).state
    played = Played(state, [], [])

    def step(inp: Input, now: dt.datetime, timed: bool = False) -> None:
        result = decide(played.state, inp, now)
        assert sum(c.kind == "checkin_prompt" for c in result.commands) <= 1  # catch-up
        played.state = result.state
        played.commands.extend(result.commands)
        if timed:
            played.timed.extend((now, c) for c in result.commands)
        due = next_due(played.state)
        assert played.state.stream_time is not None
        assert due is None or due > played.state.stream_time  # progress, always

    def run_until(instant: dt.datetime) -> None:
        while (due := next_due(played.state)) is not None and due <= instant:
            step(ClockTicked(), due, timed=True)

    schedule = sorted(
        [(now, 1, inp) for now, inp in inputs] + [(t, 0, ClockTicked()) for t in ticks],
        key=lambda x: (x[0], x[1]),
    )
    for now, _, inp in schedule:
        if tick == "fine":
            run_until(now)
        step(inp, now)
    if tick == "fine":
        run_until(spec.end)
    step(ClockTicked(), spec.end)
    return played


def report_driven(state: PatientState) -> set[tuple[str, str, str, tuple[uuid.UUID, ...]]]:
    return {
        (a.kind, a.rule, a.cause, a.evidence) for a in state.alerts if a.kind != "lost_to_follow_up"
    }


def covered(state: PatientState) -> bool:
    for c in history_alerts(state):
        if not any(
            a.kind == c.kind
            and (
                c.kind == "six_month_persistence"
                or a.cause == c.cause
                or (c.kind == "worsening" and a.cause in {str(m) for m in c.members})
                or (c.kind != "worsening" and not c.members.isdisjoint(a.evidence))
            )
            for a in state.alerts
        ):
            return False
    return True


@FAST
@given(specs(), st.data())
def test_no_dedupe_key_twice_across_a_course(spec: Spec, data: st.DataObject) -> None:
    dups = data.draw(st.frozensets(st.integers(0, max(len(spec.reports) - 1, 0))))
    played = play(spec, deliveries(spec, dups))
    keys = [c.dedupe_key for c in played.commands]
    assert len(keys) == len(set(keys))
    assert set(keys) == played.state.emitted
    assert next_due(played.state) is None  # nothing left after day 365
    for c in played.commands:
        assert c.dedupe_key.startswith(f"p-9:{c.kind}:")


@settings(max_examples=20, deadline=None)
@given(specs(), st.data())
def test_deterministic_and_idempotent_under_redelivery(spec: Spec, data: st.DataObject) -> None:
    dups = data.draw(st.frozensets(st.integers(0, max(len(spec.reports) - 1, 0)), min_size=1))
    first, again = play(spec, deliveries(spec)), play(spec, deliveries(spec))
    assert first.commands == again.commands  # the same inputs, the same decisions
    assert first.state == again.state
    assert PatientState.model_validate_json(first.state.model_dump_json()) == first.state
    redelivered = play(spec, deliveries(spec, dups))  # duplicates change nothing
    assert redelivered.commands == first.commands
    assert redelivered.state == first.state


@FAST
@given(specs(late=False), st.data())
def test_final_state_independent_of_arrival_order(spec: Spec, data: st.DataObject) -> None:
    order = data.draw(st.permutations(spec.reports))

    def arrive(reports: list[Report] | tuple[Report, ...]) -> Played:
        # each recorded when it arrives: the latest occurred_at seen so far
        inputs: list[tuple[dt.datetime, Input]] = []
        latest = spec.enrolled_at
        for r in reports:
            latest = max(latest, r.occurred_at)
            inputs.append((latest, Reported(r)))
        return play(spec, inputs, tick="none")

    by_time = sorted(spec.reports, key=lambda r: (r.occurred_at, str(r.event_id)))
    a, b = arrive(by_time), arrive(order)
    assert a.state.reports == b.state.reports
    assert a.state.stream_time == b.state.stream_time
    assert phase_of(a.state) == phase_of(b.state)
    assert in_remission(a.state) == in_remission(b.state)
    assert covered(a.state)
    assert covered(b.state)
    flags_a = {k for k in report_driven(a.state) if k[0] == "red_flag"}
    flags_b = {k for k in report_driven(b.state) if k[0] == "red_flag"}
    assert flags_a == flags_b
    # delivered in order, the report-driven alerts are exactly the history's
    expected = {
        (c.kind, c.rule, c.cause, tuple(r.event_id for r in c.evidence))
        for c in history_alerts(a.state)
    }
    assert report_driven(a.state) == expected


@FAST
@given(specs(late=False), st.data())
def test_clock_granularity_changes_only_the_prompts(spec: Spec, data: st.DataObject) -> None:
    fine = play(spec, deliveries(spec))
    # the tick now at each timer-driven command is its due instant: next_due was exact
    for now, cmd in fine.timed:
        if cmd.kind == "checkin_prompt":
            assert cmd.due_at == now
    offsets = data.draw(st.lists(st.integers(0, 420 * 24), max_size=12))
    ticks = tuple(spec.enrolled_at + dt.timedelta(hours=h) for h in offsets)
    sparse = play(spec, deliveries(spec), tick="sparse", ticks=ticks)

    # Catch-up: prompts (and so lost to follow-up) depend on the clock; nothing else does.
    def untimed(cmds: list[SendNotificationPayload]) -> set[str]:
        return {
            c.dedupe_key
            for c in cmds
            if c.kind not in ("checkin_prompt", "lost_to_follow_up")
            and str(c.facts.get("alert_kind")) != "lost_to_follow_up"
        }

    assert untimed(fine.commands) == untimed(sparse.commands)
    strip = [(a.kind, a.rule, a.cause, a.evidence) for a in fine.state.alerts]
    assert sorted((s for s in strip if s[0] != "lost_to_follow_up"), key=str) == sorted(
        [
            (a.kind, a.rule, a.cause, a.evidence)
            for a in sparse.state.alerts
            if a.kind != "lost_to_follow_up"
        ],
        key=str,
    )
    sent = {q.day for q in sparse.state.prompts if not q.skipped}
    assert not sent & {q.day for q in sparse.state.prompts if q.skipped}
    assert {q.day for q in fine.state.prompts if q.skipped} == set()  # never stale when fine
