"""The five care-team alerts, their evidence, episodes, urgency and boundaries."""

from __future__ import annotations

import datetime as dt

import pytest

from assessor.domain import day_number, next_due
from shared.events import SendNotificationPayload
from tests.unit.rules_kit import BACKUP, ON_CALL, Course

# a course: (day, severity) reports in order, hour 12 local
Reports = list[tuple[int, int]]


def run(reports: Reports, baseline: int = 3) -> Course:
    course = Course(baseline=baseline)
    for day, severity in reports:
        course.report(day, severity)
    return course


def alerts(course: Course, kind: str) -> list[tuple[str, list[int]]]:
    """(rule, evidence days) of each alert of ``kind`` raised."""
    by_id = {r.event_id: r for r in course.state.reports}
    return [
        (a.rule, [day_number(course.surgery, by_id[e].occurred_at, course.tz) for e in a.evidence])
        for a in course.state.alerts
        if a.kind == kind
    ]


def told(course: Course, kind: str) -> list[SendNotificationPayload]:
    """The ``care_team_notified`` messages sent for alerts of ``kind``."""
    return [c for c in course.of("care_team_notified") if c.facts["alert_kind"] == kind]


# --- worsening --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reports", "baseline", "expected"),
    [
        # (a) above baseline, from day 4
        ([(3, 4)], 3, []),
        ([(4, 4)], 3, [("worsening.above_baseline", [4])]),
        ([(10, 3)], 3, []),  # equal to baseline is not worse
        ([(10, 2)], 1, [("worsening.above_baseline", [10])]),
        # once per episode; the episode ends at a report meeting neither (a) nor (b)
        ([(10, 4), (11, 4), (12, 4)], 3, [("worsening.above_baseline", [10])]),
        (
            [(10, 4), (11, 3), (12, 4)],
            3,
            [("worsening.above_baseline", [10]), ("worsening.above_baseline", [12])],
        ),
        # (b) two consecutive reports from day 30, each >= nadir + 2
        ([(10, 1), (30, 3), (31, 3)], 4, [("worsening.nadir_plus_2", [30, 31])]),
        ([(10, 1), (29, 3), (30, 3)], 4, []),  # the first of the two is on day 29
        ([(10, 1), (30, 2), (31, 3)], 4, []),  # 2 < nadir + 2
        ([(10, 1), (30, 3)], 4, []),  # a single report is not enough
        ([(30, 3), (31, 3)], 4, []),  # no report before the pair: no nadir
        ([(3, 0), (30, 3), (31, 3)], 4, []),  # nadir counts from day 4 only
        ([(3, 0), (10, 2), (30, 4), (31, 4)], 4, [("worsening.nadir_plus_2", [30, 31])]),
        ([(3, 0), (10, 3), (30, 4), (31, 4)], 4, []),  # 4 < nadir 3 + 2
        ([(3, 0), (10, 1), (30, 3), (31, 3)], 4, [("worsening.nadir_plus_2", [30, 31])]),
        # the nadir excludes the pair itself: (1, 3) after a 3 is not a pair
        ([(10, 3), (30, 1), (31, 3)], 4, []),
        # (b) episode: continues while each report meets (b) with the one before it
        (
            [(10, 1), (30, 3), (31, 3), (32, 3), (33, 1), (34, 3), (35, 3)],
            4,
            [("worsening.nadir_plus_2", [30, 31]), ("worsening.nadir_plus_2", [34, 35])],
        ),
        # the month-8 rebound: a single bad report late in the course is not worsening
        ([(10, 2), (120, 0), (240, 3), (250, 1)], 3, []),
    ],
)
def test_worsening(reports: Reports, baseline: int, expected: list[tuple[str, list[int]]]) -> None:
    assert alerts(run(reports, baseline), "worsening") == expected


def test_worsening_pages_at_once_with_backup_and_tells_the_patient() -> None:
    course = Course(baseline=2)
    course.report(9, 4, hour=2)  # 02:00 local: urgent, so no waiting for day hours
    [page] = course.of("worsening")
    assert page.urgency == "urgent"
    assert page.audience == "care_team"
    assert (page.to, page.backup_to) == (ON_CALL, BACKUP)
    assert page.due_at == course.local(9, 2)
    assert page.facts["severity"] == 4
    assert page.facts["baseline_severity"] == 2
    assert page.facts["evidence"] == "day 9: 4"
    assert page.rule == "worsening.above_baseline"
    [message] = told(course, "worsening")
    assert message.audience == "patient"
    assert message.due_at == course.local(9, 8)  # the patient's message waits for 08:00
    assert course.of("reassurance") == []  # a report that raised an alert


def test_a_late_report_that_splits_an_episode_gets_its_own_alert() -> None:
    """Baseline 4; on time 10:0, 41:3, 60:3 (alert on 41–60), then late 40:3, 61:3 and 50:1.
    Ordered: 40–41 is one episode (ended by 50:1), 60–61 another. The alert raised for 60
    covers only the episode its triggering report (60) is in: two episodes, two alerts."""
    course = run([(10, 0), (41, 3), (60, 3)], baseline=4)
    assert alerts(course, "worsening") == [("worsening.nadir_plus_2", [41, 60])]
    late = course.local(62)
    course.report(40, 3, recorded=late)
    course.report(61, 3, recorded=late)
    assert len(course.of("worsening")) == 1  # still one episode: 40, 41, 60, 61
    course.report(50, 1, recorded=late)
    assert alerts(course, "worsening") == [
        ("worsening.nadir_plus_2", [41, 60]),
        ("worsening.nadir_plus_2", [40, 41]),
    ]
    assert len(told(course, "worsening")) == 2


@pytest.mark.parametrize(
    ("late", "alerted"),
    [
        ((50, 1), 2),  # ends the first episode: 40–41 and 60–61 are two
        ((50, 2), 1),  # 2 ≥ nadir 0 + 2: one episode 40–61, covered by the alert on 60
        ((45, 3), 1),  # joins the episode
    ],
)
def test_an_alert_covers_the_episode_of_its_triggering_report(
    late: tuple[int, int], alerted: int
) -> None:
    course = run([(10, 0), (41, 3), (60, 3)], baseline=4)
    at = course.local(62)
    for day, severity in [(40, 3), (61, 3), late]:
        course.report(day, severity, recorded=at)
    assert len(course.of("worsening")) == alerted


def test_no_reassurance_inside_an_alerted_worsening_episode() -> None:
    course = run([(10, 4), (25, 4)])
    assert course.of("reassurance") == []
    course.report(40, 2)  # ends the episode; 30 days since: reassurance
    assert len(course.of("reassurance")) == 1


# --- recurrence -------------------------------------------------------------------------

REMISSION: Reports = [(20, 0), (34, 0)]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ([(40, 2)], [("recurrence.single_ge2", [40])]),
        ([(40, 1), (41, 1)], [("recurrence.two_ge1", [40, 41])]),
        ([(40, 1)], []),
        ([(40, 1), (41, 0), (42, 1)], []),
        ([(40, 1), (41, 0), (42, 2)], [("recurrence.single_ge2", [42])]),
        # once per remission episode
        ([(40, 2), (41, 3), (42, 2)], [("recurrence.single_ge2", [40])]),
        # a new remission episode may recur again
        (
            [(40, 2), (50, 0), (64, 0), (70, 1), (71, 1)],
            [("recurrence.single_ge2", [40]), ("recurrence.two_ge1", [70, 71])],
        ),
    ],
)
def test_recurrence(after: Reports, expected: list[tuple[str, list[int]]]) -> None:
    course = run(REMISSION + after, baseline=4)
    assert alerts(course, "recurrence") == expected
    for page in course.of("recurrence"):
        assert page.urgency == "routine"
        assert page.backup_to is None


def test_no_recurrence_without_remission_first() -> None:
    assert alerts(run([(20, 0), (30, 0), (40, 2)], baseline=4), "recurrence") == []


# --- six-month persistence --------------------------------------------------------------


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ([(160, 2)], [("six_month_persistence.clock", [160])]),
        ([(152, 1)], [("six_month_persistence.clock", [152])]),
        ([(151, 2)], []),  # not recent enough for the clock rule
        ([(160, 0)], []),
        ([(160, 2), (170, 0)], []),
    ],
)
def test_persistence_by_clock(reports: Reports, expected: list[tuple[str, list[int]]]) -> None:
    course = run(reports)
    course.run_to(183, 0, 0)
    assert alerts(course, "six_month_persistence") == expected


def test_persistence_by_clock_fires_at_the_midnight_of_day_183() -> None:
    course = run([(160, 2)])
    course.run_to(182, 23, 59)
    assert course.of("six_month_persistence") == []
    assert next_due(course.state) == course.local(183, 0)
    course.tick(course.local(183, 0))
    [page] = course.of("six_month_persistence")
    assert course.phase == "persistent"
    assert page.due_at == course.local(183, 8)  # routine: the care team's day hours
    assert page.facts["day"] == 183
    assert page.facts["evidence"] == "day 160: 2"
    [alert] = [a for a in course.state.alerts if a.kind == "six_month_persistence"]
    assert alert.raised_at == course.local(183, 0)


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ([(151, 2), (183, 1)], [("six_month_persistence.report", [183])]),
        ([(190, 2)], [("six_month_persistence.report", [190])]),
        ([(190, 0), (200, 1)], [("six_month_persistence.report", [200])]),
        ([(190, 0)], []),
        # at most once per patient
        ([(190, 2), (200, 0), (210, 3)], [("six_month_persistence.report", [190])]),
        # in remission (latest 0): no
        ([(170, 0), (184, 0)], []),
    ],
)
def test_persistence_by_report(reports: Reports, expected: list[tuple[str, list[int]]]) -> None:
    assert alerts(run(reports), "six_month_persistence") == expected


def test_persistence_is_raised_once_even_after_clock_and_reports() -> None:
    course = run([(160, 2), (190, 3), (200, 2)])
    assert len(course.of("six_month_persistence")) == 1


# --- red flags --------------------------------------------------------------------------


def test_red_flag_pages_at_once_and_the_patient_hears_at_once_at_night() -> None:
    course = Course(language="es", tz="America/Mexico_City")
    course.report(6, None, hour=23, note="tengo fiebre y el cuello rígido")
    [page] = course.of("red_flag")
    assert page.urgency == "urgent"
    assert page.backup_to == BACKUP
    assert page.due_at == course.local(6, 23)
    assert page.facts["flags"] == "fever, stiff_neck"
    assert page.facts["matched"] == "fever: fiebre; stiff_neck: cuello rigido"
    assert page.facts["evidence"] == "day 6: note"
    assert page.rule == "red_flag.note"
    [message] = told(course, "red_flag")
    assert message.due_at == course.local(6, 23)  # exempt from quiet hours


def test_a_clearly_negated_mention_does_not_page_a_hedged_one_does() -> None:
    course = Course()
    course.report(6, 2, note="no fever, no stiff neck")
    assert course.of("red_flag") == []
    course.report(7, 2, note="I don't think I have a fever")
    [page] = course.of("red_flag")
    assert page.facts["matched"] == "fever: fever"


def test_every_red_flag_report_is_its_own_alert() -> None:
    course = Course()
    course.report(10, 2, note="severe headache")
    course.report(10, 2, hour=13, note="still a severe headache")
    course.report(10, 2, hour=14, note="headache")  # plain headache: no flag
    assert len(course.of("red_flag")) == 2
    assert len({c.dedupe_key for c in course.of("red_flag")}) == 2


def test_red_flag_before_surgery_and_after_monitoring_complete() -> None:
    course = Course(enroll_day=-20)
    course.report(-5, None, note="I have a fever")
    course.report(400, None, note="confused")
    assert len(course.of("red_flag")) == 2


# --- lost to follow-up ------------------------------------------------------------------


def test_lost_to_follow_up_48_hours_after_the_third_prompt() -> None:
    course = Course()
    course.run_to(5, 9, 59)
    assert course.prompt_days() == [1, 2, 3]
    assert course.of("lost_to_follow_up") == []
    assert next_due(course.state) == course.local(5, 10)
    course.tick(course.local(5, 10))
    [page] = course.of("lost_to_follow_up")
    assert page.dedupe_key == "p-1:lost_to_follow_up:day1"
    assert page.urgency == "routine"
    assert page.due_at == course.local(5, 10)
    assert page.facts["first_prompt_day"] == 1
    assert page.facts["last_prompt_day"] == 3
    assert page.evidence == ()
    assert len(course.of("care_team_notified")) == 1


@pytest.mark.parametrize(
    ("report_at", "alerted"),
    [
        ((5, 9, 59), False),  # a report before the deadline ends the silence
        ((5, 10, 0), False),  # ... even at the deadline itself, if it arrives first
        ((2, 11, 0), False),  # between prompts: only two unanswered since
        ((0, 9, 0), True),  # the day before the first prompt: three unanswered after it
        ((1, 9, 0), False),  # it skips the day-1 prompt (a report in the previous 24 h)
    ],
)
def test_a_report_ends_the_silence(report_at: tuple[int, int, int], alerted: bool) -> None:
    course = Course()
    day, hour, minute = report_at
    course.report(day, None, hour, minute, note="ok", recorded=course.local(day, hour, minute))
    course.run_to(6)
    assert bool(course.of("lost_to_follow_up")) is alerted


def test_late_report_before_the_deadline_still_counts_if_it_arrives_first() -> None:
    # the clock has not ticked at the deadline yet when a report from before it arrives
    course = Course()
    course.run_to(5, 9)
    course.report(5, 2, 9, 30, recorded=course.local(5, 11))
    assert course.of("lost_to_follow_up") == []


def test_lost_to_follow_up_once_per_silence_and_again_after_a_report() -> None:
    course = Course()
    course.run_to(20)
    assert [c.dedupe_key for c in course.of("lost_to_follow_up")] == ["p-1:lost_to_follow_up:day1"]
    course.report(20, 2)  # day 21's prompt is skipped (a report within 24 h)
    course.run_to(60)  # prompts 28, 42, 56 unanswered: due 48 h after day 56
    assert [c.dedupe_key for c in course.of("lost_to_follow_up")] == [
        "p-1:lost_to_follow_up:day1",
        "p-1:lost_to_follow_up:day28",
    ]
    assert course.of("lost_to_follow_up")[1].facts["day"] == 58


def test_prompts_while_opted_out_do_not_count() -> None:
    course = Course(consent=False)
    course.run_to(6)
    assert course.prompt_days() == [1, 2, 3]  # decided (the notifier suppresses them)
    assert course.of("lost_to_follow_up") == []
    course.consent(True, course.local(6, 12))
    course.run_to(17)  # prompts 7 and 14 count: two
    assert course.of("lost_to_follow_up") == []
    course.run_to(24)  # the third, day 21; deadline day 23 10:00
    [page] = course.of("lost_to_follow_up")
    assert page.dedupe_key == "p-1:lost_to_follow_up:day7"
    assert page.facts["day"] == 23


# --- the care team's time zone and day hours ---------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "due"),
    [
        (7, 59, (190, 8, 0)),
        (8, 0, (190, 8, 0)),
        (17, 59, (190, 17, 59)),
        (18, 0, (191, 8, 0)),
        (23, 30, (191, 8, 0)),
        (0, 0, (190, 8, 0)),
    ],
)
def test_routine_alerts_wait_for_the_care_teams_day_hours(
    hour: int, minute: int, due: tuple[int, int, int]
) -> None:
    course = Course()
    course.report(190, 2, hour, minute)
    [page] = course.of("six_month_persistence")
    assert page.due_at == course.local(*due)
    assert page.timezone == "America/Chicago"


def test_day_hours_are_the_care_teams_when_it_has_a_zone() -> None:
    # a Honolulu patient, a Berlin care team: 12:00 in Honolulu is 23:00 in Berlin
    course = Course(tz="Pacific/Honolulu", team_tz="Europe/Berlin")
    course.report(190, 2, 12)
    [page] = course.of("six_month_persistence")
    assert page.timezone == "Europe/Berlin"
    berlin = page.due_at.astimezone(dt.timezone(dt.timedelta(hours=2)))  # CEST in September
    assert (berlin.hour, berlin.minute) == (8, 0)
    assert page.due_at > course.local(190, 12)
    [message] = told(course, "six_month_persistence")
    assert message.timezone == "Pacific/Honolulu"
    assert message.due_at == course.local(190, 12)


def test_a_care_team_without_backup_gets_no_backup() -> None:
    course = Course(backup=None, baseline=1)
    course.report(10, 3)
    assert course.of("worsening")[0].backup_to is None
