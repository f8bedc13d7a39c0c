"""The walking skeleton's rule: a report with severity ≥ 1 on day 1–182 → reassurance."""

import datetime as dt
import uuid

import pytest

from assessor.rules import (
    ClockTicked,
    Enrolled,
    PatientState,
    Report,
    Reported,
    day_number,
    decide,
    phase_of,
)
from shared.events import PatientEnrolledPayload

TZ = "America/Chicago"
SURGERY = dt.date(2026, 3, 2)
PROFILE = PatientEnrolledPayload(
    phone="+15551230001",
    timezone=TZ,
    language="en",
    surgery_date=SURGERY,
    baseline_severity=3,
    care_team={"on_call": "+15550001111"},
    sms_consent=True,
)


def local(day: int, hour: int = 12) -> dt.datetime:
    from zoneinfo import ZoneInfo

    naive = dt.datetime.combine(SURGERY + dt.timedelta(days=day), dt.time(hour))
    return naive.replace(tzinfo=ZoneInfo(TZ)).astimezone(dt.UTC)


def enrolled_state(day: int = 0) -> PatientState:
    return decide(PatientState(patient_id="p-1"), Enrolled(PROFILE), local(day)).state


def report(day: int, severity: int | None, hour: int = 12) -> Reported:
    return Reported(Report(event_id=uuid.uuid4(), occurred_at=local(day, hour), severity=severity))


@pytest.mark.parametrize(
    ("day", "severity", "expected"),
    [
        (0, 2, 0),
        (1, 2, 1),
        (5, 1, 1),
        (5, 0, 0),
        (182, 4, 1),
        (183, 2, 0),
        (5, None, 0),
    ],
)
def test_reassurance_window(day: int, severity: int | None, expected: int) -> None:
    result = decide(enrolled_state(), report(day, severity), local(day))
    assert len(result.commands) == expected
    for cmd in result.commands:
        assert cmd.kind == "reassurance"
        assert cmd.to == PROFILE.phone
        assert cmd.dedupe_key.startswith("p-1:reassurance:")


def test_redelivered_report_changes_nothing() -> None:
    r = report(5, 2)
    first = decide(enrolled_state(), r, local(5))
    again = decide(first.state, r, local(5))
    assert len(first.commands) == 1
    assert again.commands == ()
    assert again.state == first.state


def test_at_most_one_reassurance_per_14_days() -> None:
    state = enrolled_state()
    sent = []
    for day in (5, 10, 18, 19):
        result = decide(state, report(day, 2), local(day))
        state = result.state
        sent.extend(day for _ in result.commands)
    assert sent == [5, 19]  # day 19 is 14 calendar days on, though DST made it 13d 23h


def test_day_number_uses_the_patients_calendar() -> None:
    # 04:30 UTC on 2026-03-08 is still the evening of 2026-03-07 in Chicago (day 5).
    instant = dt.datetime(2026, 3, 8, 4, 30, tzinfo=dt.UTC)
    assert day_number(SURGERY, instant, TZ) == 5
    assert day_number(SURGERY, instant, "Europe/Berlin") == 6


@pytest.mark.parametrize(
    ("day", "phase"),
    [
        (-1, "pre_op"),
        (0, "early_postop"),
        (3, "early_postop"),
        (4, "expected_window"),
        (182, "expected_window"),
        (183, "late_follow_up"),
        (365, "monitoring_complete"),
    ],
)
def test_phase_by_day_without_reports(day: int, phase: str) -> None:
    state = decide(enrolled_state(-30), ClockTicked(), local(day)).state
    assert phase_of(state) == phase


def test_late_report_is_inserted_in_order() -> None:
    state = enrolled_state()
    later, earlier = report(10, 3), report(6, 2)
    state = decide(state, later, local(10)).state
    state = decide(state, earlier, local(10)).state
    assert [r.occurred_at for r in state.reports] == [local(6), local(10)]
    assert state.stream_time == local(10)
