"""Day numbers, phases and the remission condition, at their boundaries and across zones."""

from __future__ import annotations

import datetime as dt

import pytest

from assessor.domain import day_number, in_remission
from tests.unit.rules_kit import SURGERY, Course

UTC = dt.UTC


@pytest.mark.parametrize(
    ("instant", "tz", "day"),
    [
        # 04:30 UTC on 2026-03-08 is still the evening of 2026-03-07 in Chicago (day 5)
        (dt.datetime(2026, 3, 8, 4, 30, tzinfo=UTC), "America/Chicago", 5),
        (dt.datetime(2026, 3, 8, 4, 30, tzinfo=UTC), "Europe/Berlin", 6),
        # east of UTC: 15:00 UTC is already tomorrow in Tokyo
        (dt.datetime(2026, 3, 2, 14, 59, tzinfo=UTC), "Asia/Tokyo", 0),
        (dt.datetime(2026, 3, 2, 15, 0, tzinfo=UTC), "Asia/Tokyo", 1),
        # west of UTC: Honolulu (UTC-10, no DST) is still on yesterday until 10:00 UTC
        (dt.datetime(2026, 3, 3, 9, 59, tzinfo=UTC), "Pacific/Honolulu", 0),
        (dt.datetime(2026, 3, 3, 10, 0, tzinfo=UTC), "Pacific/Honolulu", 1),
        (dt.datetime(2026, 3, 2, 7, 59, tzinfo=UTC), "America/Los_Angeles", -1),
        (dt.datetime(2026, 3, 2, 8, 0, tzinfo=UTC), "America/Los_Angeles", 0),
        # DST days are whole days: Chicago's 23-hour 2026-03-08 and 25-hour 2026-11-01
        (dt.datetime(2026, 3, 9, 4, 59, tzinfo=UTC), "America/Chicago", 6),
        (dt.datetime(2026, 3, 9, 5, 0, tzinfo=UTC), "America/Chicago", 7),
        (dt.datetime(2026, 11, 2, 5, 59, tzinfo=UTC), "America/Chicago", 244),
        (dt.datetime(2026, 11, 2, 6, 0, tzinfo=UTC), "America/Chicago", 245),
        (dt.datetime(2026, 3, 29, 21, 59, tzinfo=UTC), "Europe/Berlin", 27),
        (dt.datetime(2026, 3, 29, 22, 0, tzinfo=UTC), "Europe/Berlin", 28),
    ],
)
def test_day_number(instant: dt.datetime, tz: str, day: int) -> None:
    assert day_number(SURGERY, instant, tz) == day


@pytest.mark.parametrize("tz", ["America/Chicago", "Asia/Tokyo", "Pacific/Honolulu"])
@pytest.mark.parametrize(
    ("day", "hour", "minute", "phase"),
    [
        (-1, 23, 59, "pre_op"),
        (0, 0, 0, "early_postop"),
        (3, 23, 59, "early_postop"),
        (4, 0, 0, "expected_window"),
        (182, 23, 59, "expected_window"),
        (183, 0, 0, "late_follow_up"),
        (364, 23, 59, "late_follow_up"),
        (365, 0, 0, "monitoring_complete"),
    ],
)
def test_phase_by_day_without_reports(
    tz: str, day: int, hour: int, minute: int, phase: str
) -> None:
    course = Course(tz=tz, enroll_day=-30)
    course.run_to(day, hour, minute)
    assert course.phase == phase


@pytest.mark.parametrize(
    ("report_day", "severity", "phase"),
    [
        (151, 2, "late_follow_up"),  # the latest report is older than day 152
        (152, 1, "persistent"),
        (152, 0, "late_follow_up"),  # a single zero is not remission
        (170, 4, "persistent"),
    ],
)
def test_persistent_needs_a_recent_report_with_twitching(
    report_day: int, severity: int, phase: str
) -> None:
    course = Course()
    course.report(report_day, severity)
    course.run_to(183, 0, 0)
    assert course.phase == phase


def test_persistent_then_late_follow_up_when_twitching_stops() -> None:
    course = Course()
    course.report(190, 2)
    assert course.phase == "persistent"
    course.report(200, 0)
    assert course.phase == "late_follow_up"


# reports: (day, hour, minute, severity)
R = tuple[int, int, int, int]


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ([(1, 12, 0, 0), (15, 12, 0, 0)], True),
        ([(1, 12, 0, 0), (15, 11, 59, 0)], False),  # 13 days 23:59
        # surgery day (day 0) is ignored: its reports neither start nor break a run
        ([(0, 20, 0, 0), (15, 12, 0, 0)], False),  # the run is day 15 alone
        ([(0, 9, 0, 0), (14, 12, 0, 0)], False),  # 14 days from day 0, but day 0 is ignored
        # (was False when a day-0 zero started the run; the rules page now ignores day 0)
        ([(0, 20, 0, 0), (5, 12, 0, 0), (40, 12, 0, 0)], True),  # the run is days 5–40
        ([(0, 12, 0, 0), (1, 12, 0, 0), (15, 12, 0, 0)], True),  # days 1–15: 14 days
        ([(0, 12, 0, 0), (1, 12, 0, 0), (14, 12, 0, 0)], False),  # days 1–14: 13 days
        ([(0, 12, 0, 3), (1, 12, 0, 0), (15, 12, 0, 0)], True),  # day 0's 3 breaks nothing
        ([(1, 12, 0, 0), (0, 23, 0, 0)], False),  # one zero from day 1
        ([(2, 12, 0, 0), (5, 12, 0, 2), (10, 12, 0, 0), (24, 12, 0, 0)], True),
        ([(2, 12, 0, 0), (3, 12, 0, 0), (6, 12, 0, 2)], False),  # the silent period
        ([(10, 12, 0, 0)], False),
        ([(10, 12, 0, 0), (24, 12, 0, 0), (30, 12, 0, 1)], False),
        ([(10, 12, 0, 0), (12, 12, 0, 0), (24, 12, 0, 0)], True),
        # across the spring-forward on day 6 (2026-03-08): noon to noon is 14 days,
        # though only 13 days 23 hours elapse
        ([(5, 12, 0, 0), (19, 12, 0, 0)], True),
        ([(5, 12, 0, 0), (19, 11, 59, 0)], False),
    ],
)
def test_remission_condition(reports: list[R], expected: bool) -> None:
    course = Course()
    for day, hour, minute, severity in reports:
        course.report(day, severity, hour, minute)
    assert in_remission(course.state) is expected
    assert (course.phase == "remission") is expected


def test_remission_span_across_fall_back_is_wall_clock() -> None:
    # Chicago falls back on 2026-11-01: 2026-10-25 12:00 CDT → 2026-11-08 11:30 CST is
    # 14 days 30 minutes elapsed but 13 days 23:30 on the wall clock: not yet.
    surgery = dt.date(2026, 10, 1)
    course = Course(surgery=surgery)
    course.report(24, 0)  # 2026-10-25
    course.report(38, 0, 11, 30)  # 2026-11-08
    assert not in_remission(course.state)
    course.report(38, 0, 12, 0)
    assert in_remission(course.state)


def test_remission_in_berlin_across_its_dst_change() -> None:
    course = Course(tz="Europe/Berlin")
    course.report(20, 0)  # 2026-03-22 CET
    course.report(34, 0)  # 2026-04-05 CEST: 13 days 23 hours elapsed, 14 on the wall
    assert course.phase == "remission"


def test_remission_wins_over_persistent_and_monitoring_complete_over_remission() -> None:
    course = Course()
    course.report(200, 0)
    course.report(214, 0)
    assert course.phase == "remission"
    course.run_to(365, 0, 0)
    assert course.phase == "monitoring_complete"


def test_report_near_local_midnight_counts_on_its_local_day() -> None:
    # Tokyo 23:59 on day 3 is early post-op; 00:00 on day 4 is the expected window
    course = Course(tz="Asia/Tokyo", baseline=2)
    course.report(3, 4, 23, 59)
    assert course.of("worsening") == []
    course.report(4, 4, 0, 0)
    assert len(course.of("worsening")) == 1
