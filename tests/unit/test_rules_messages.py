"""Patient messages (prompts, reassurance, congratulations, completion), quiet hours,
consent, dedupe keys and ``next_due``."""

from __future__ import annotations

import datetime as dt

import pytest

from assessor.domain import (
    DEFAULT_RULES,
    ClockTicked,
    Enrolled,
    PatientState,
    RuleSettings,
    decide,
    next_due,
)
from tests.unit.rules_kit import PHONE, SURGERY, Course, new_id, profile

SCHEDULE = [1, 2, 3, 7, 14, 21, 28, *range(42, 183, 14), 212, 242, 272, 302, 332, 362]


def test_the_schedule_is_the_pages() -> None:
    assert list(DEFAULT_RULES.prompt_days) == SCHEDULE
    assert RuleSettings(prompt_monthly_last_day=300).prompt_days[-1] == 272


# --- check-in prompts -------------------------------------------------------------------


@pytest.mark.parametrize(
    "tz", ["America/Chicago", "Asia/Tokyo", "Pacific/Honolulu", "America/Los_Angeles"]
)
def test_prompts_at_10_local_on_every_scheduled_day(tz: str) -> None:
    course = Course(tz=tz)
    course.run_to(400)
    prompts = course.of("checkin_prompt")
    assert course.prompt_days() == SCHEDULE
    for prompt in prompts:
        day = int(prompt.facts["day"])  # type: ignore[arg-type]
        assert prompt.due_at == course.local(day, 10)
        assert prompt.dedupe_key == f"p-1:checkin_prompt:day{day}"
        assert (prompt.audience, prompt.to, prompt.timezone) == ("patient", PHONE, tz)
    [done] = course.of("monitoring_complete")
    assert done.due_at == course.local(365, 10)
    assert done.dedupe_key == "p-1:monitoring_complete:day365"
    assert next_due(course.state) is None


def test_prompts_across_dst_stay_at_10_local() -> None:
    course = Course()  # Chicago: DST from day 6 (2026-03-08); the day-7 prompt is 15:00 UTC
    course.run_to(8)
    [day3, day7] = [p for p in course.of("checkin_prompt") if p.facts["day"] in (3, 7)]
    assert day3.due_at.hour == 16
    assert day7.due_at.hour == 15


@pytest.mark.parametrize(
    ("report_at", "prompted"),
    [
        ((6, 9, 59), True),  # 24 h and 1 minute before the day-7 prompt
        ((6, 10, 0), False),  # exactly 24 h before
        ((6, 11, 0), False),
        ((7, 9, 59), False),
    ],
)
def test_prompt_skipped_after_a_report_in_the_previous_24_hours(
    report_at: tuple[int, int, int], prompted: bool
) -> None:
    course = Course()
    day, hour, minute = report_at
    course.report(day, 2, hour, minute)
    course.run_to(8)
    assert (7 in course.prompt_days()) is prompted


def test_prompts_in_remission_are_spaced_30_days() -> None:
    course = Course()
    course.report(40, 0, hour=9)  # the day-42 prompt is sent (49 h later)
    course.report(54, 0, hour=9)  # remission from day 54: 56 and 70 are too soon after 42
    course.run_to(364)
    days = course.prompt_days()
    assert course.phase == "remission"
    # in remission, a due prompt goes out only 30+ days after the last one sent
    in_remission = [d for d in days if d > 54]
    assert in_remission == [84, 126, 168, 212, 242, 272, 302, 332, 362]
    assert all(b - a >= 30 for a, b in zip([42, *in_remission], in_remission, strict=False))


def test_no_prompts_for_slots_before_enrollment() -> None:
    course = Course(enroll_day=30)
    course.run_to(60)
    assert course.prompt_days() == [42, 56]


def test_monitoring_complete_once_and_nothing_after() -> None:
    course = Course()
    course.run_to(365, 9, 59)
    assert course.of("monitoring_complete") == []
    assert next_due(course.state) == course.local(365, 10)
    course.run_to(365, 10)
    assert len(course.of("monitoring_complete")) == 1
    course.run_to(500)
    course.report(501, 0)
    assert len(course.of("monitoring_complete")) == 1
    assert max(course.prompt_days()) == 362


# --- reassurance ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "severity", "expected"),
    [
        (0, 2, 0),
        (1, 2, 1),
        (5, 1, 1),
        (5, 0, 0),
        (182, 4, 0),  # worse than baseline 3 → worsening, no reassurance
        (182, 3, 1),
        (183, 2, 0),
        (5, None, 0),
    ],
)
def test_reassurance_window(day: int, severity: int | None, expected: int) -> None:
    course = Course()
    course.report(day, severity)
    sent = course.of("reassurance")
    assert len(sent) == expected
    for cmd in sent:
        assert cmd.to == PHONE
        assert cmd.dedupe_key == f"p-1:reassurance:{course.state.reports[-1].event_id}"
        assert cmd.facts["day"] == day
        assert cmd.facts["severity"] == severity


def test_at_most_one_reassurance_per_14_calendar_days() -> None:
    course = Course()
    for day in (1, 5, 14, 15, 28, 29):
        course.report(day, 2)
    # day 15 is 14 calendar days after day 1, though DST (day 6) made it 13 d 23 h
    assert [c.facts["day"] for c in course.of("reassurance")] == [1, 15, 29]


def test_a_late_report_gets_no_reassurance_inside_the_14_days() -> None:
    course = Course()
    course.report(20, 2)
    course.report(10, 2, recorded=course.local(21))
    assert len(course.of("reassurance")) == 1


@pytest.mark.parametrize(
    ("hour", "minute", "due"),
    [
        (20, 59, (10, 20, 59)),
        (21, 0, (11, 8, 0)),
        (23, 59, (11, 8, 0)),
        (0, 0, (10, 8, 0)),
        (7, 59, (10, 8, 0)),
        (8, 0, (10, 8, 0)),
    ],
)
@pytest.mark.parametrize("tz", ["America/Chicago", "Asia/Tokyo", "Europe/Berlin"])
def test_quiet_hours_defer_patient_messages_to_8(
    tz: str, hour: int, minute: int, due: tuple[int, int, int]
) -> None:
    course = Course(tz=tz)
    course.report(10, 2, hour, minute)
    [sent] = course.of("reassurance")
    assert sent.due_at == course.local(*due)


def test_quiet_hours_across_the_dst_night() -> None:
    # Chicago springs forward on day 6 (2026-03-08 02:00): 22:00 on day 5 → 08:00 CDT
    course = Course()
    course.report(5, 2, 22, 0)
    [sent] = course.of("reassurance")
    assert sent.due_at == dt.datetime(2026, 3, 8, 13, 0, tzinfo=dt.UTC)


def test_quiet_hour_prompts_move_to_10() -> None:
    rules = RuleSettings(prompt_time=dt.time(7, 30))
    course = Course(rules=rules)
    course.run_to(2)
    assert [p.due_at for p in course.of("checkin_prompt")] == [
        course.local(1, 10),
        course.local(2, 10),
    ]


# --- remission congratulations ----------------------------------------------------------


def test_remission_congrats_once_per_patient() -> None:
    course = Course(baseline=4)
    course.report(20, 0)
    assert course.of("remission_congrats") == []
    course.report(34, 0, hour=21, minute=30)
    [sent] = course.of("remission_congrats")
    assert sent.due_at == course.local(35, 8)
    assert sent.facts["since_day"] == 20
    assert sent.dedupe_key == f"p-1:remission_congrats:{course.state.reports[-1].event_id}"
    course.report(50, 2)  # recurrence
    course.report(60, 0)
    course.report(80, 0)  # remission again: no second congratulation
    assert course.phase == "remission"
    assert len(course.of("remission_congrats")) == 1


def test_no_congrats_for_the_silent_period() -> None:
    course = Course()
    course.report(1, 0)
    course.report(3, 0)
    course.report(6, 2)
    assert course.of("remission_congrats") == []


# --- care_team_notified -----------------------------------------------------------------


def test_every_alert_tells_the_patient_once() -> None:
    course = Course(baseline=2)
    course.report(4, 3, note="and a fever")
    kinds = sorted(str(c.facts["alert_kind"]) for c in course.of("care_team_notified"))
    assert kinds == ["red_flag", "worsening"]
    keys = [c.dedupe_key for c in course.of("care_team_notified")]
    rid = course.state.reports[-1].event_id
    assert sorted(keys) == [
        f"p-1:care_team_notified:red_flag:{rid}",
        f"p-1:care_team_notified:worsening:{rid}",
    ]


# --- consent ----------------------------------------------------------------------------


def test_opted_out_patients_still_get_decisions_the_notifier_suppresses() -> None:
    course = Course()
    course.consent(False, course.local(4))
    course.report(10, 2)
    assert len(course.of("reassurance")) == 1
    assert course.state.sms_consent is False


def test_a_profile_update_does_not_undo_a_stop() -> None:
    course = Course()
    course.consent(False, course.local(4))
    moved = course.profile.model_copy(update={"phone": "+15551239999"})
    course.apply(Enrolled(moved), course.local(5))
    assert course.state.sms_consent is False
    back = moved.model_copy(update={"sms_consent": False})
    course.apply(Enrolled(back), course.local(6))
    assert course.state.sms_consent is False
    course.apply(Enrolled(back.model_copy(update={"sms_consent": True})), course.local(7))
    assert course.state.sms_consent is True


# --- idempotence, keys, next_due --------------------------------------------------------


def test_redelivered_report_changes_nothing() -> None:
    course = Course()
    first = course.report(5, 2)
    report = course.state.reports[-1]
    from assessor.domain import Reported

    again = decide(course.state, Reported(report), course.local(9))
    assert len(first.commands) == 1
    assert again.commands == ()
    assert again.state == course.state


def test_late_report_is_inserted_in_order() -> None:
    course = Course()
    course.report(10, 3)
    course.report(6, 2, recorded=course.local(10, 13))
    assert [r.occurred_at for r in course.state.reports] == [course.local(6), course.local(10)]
    assert course.state.stream_time == course.local(10, 13)


def test_state_round_trips_through_json() -> None:
    course = Course(baseline=2)
    course.report(10, 3, note="fever")
    course.run_to(200)
    raw = course.state.model_dump_json()
    assert PatientState.model_validate_json(raw) == course.state
    assert raw == PatientState.model_validate_json(raw).model_dump_json()  # sorted keys


def test_next_due_walks_the_timers_exactly() -> None:
    course = Course(enroll_day=-2)
    expected = [
        course.local(0, 0),  # early_postop begins
        course.local(1, 10),
        course.local(2, 10),
        course.local(3, 10),
        course.local(4, 0),  # expected_window begins
        course.local(5, 10),  # lost to follow-up
        course.local(7, 10),
    ]
    seen = []
    for _ in expected:
        due = next_due(course.state)
        assert due is not None
        seen.append(due)
        course.tick(due)
    assert seen == expected


def test_nothing_is_due_before_enrollment() -> None:
    state = PatientState(patient_id="p-2")
    assert next_due(state) is None
    state = decide(state, ClockTicked(), dt.datetime(2026, 3, 1, tzinfo=dt.UTC)).state
    assert next_due(state) is None
    state = decide(state, Enrolled(profile()), dt.datetime(2026, 3, 1, tzinfo=dt.UTC)).state
    assert next_due(state) == dt.datetime(2026, 3, 2, 6, tzinfo=dt.UTC)  # day 0, Chicago


def test_a_coarse_clock_sends_only_the_latest_prompt_and_nothing_else_is_lost() -> None:
    """Catch-up (rules page): several prompts passed at once → only the latest is sent;
    report-driven alerts and other timers are the same as with a fine clock."""
    fine, coarse = Course(), Course()
    fine.report(40, 4)
    coarse.report(40, 4, tick=False)  # a worsening alert, whatever the clock does
    fine.run_to(120)
    coarse.tick(coarse.local(120))
    assert coarse.prompt_days() == [28, 112]  # the latest at the report, then at the tick
    skipped = [q.day for q in coarse.state.prompts if q.skipped]
    assert skipped == [d for d in DEFAULT_RULES.prompt_days if d < 112 and d != 28]
    assert not any(q.counted for q in coarse.state.prompts if q.skipped)
    assert [(a.kind, a.rule) for a in coarse.state.alerts] == [
        (a.kind, a.rule) for a in fine.state.alerts if a.kind == "worsening"
    ]
    assert [a.kind for a in coarse.state.alerts] == ["worsening"]


def _catch_up(tick_at: tuple[int, int, int]) -> Course:
    course = Course(enroll_day=-1)
    course.tick(course.local(*tick_at))
    return course


@pytest.mark.parametrize(
    ("tick_at", "sent", "skipped"),
    [
        ((1, 10, 0), [1], []),  # on time
        ((2, 9, 59), [1], []),  # the only one due, 23:59 late: the latest is sent
        ((1, 22, 0), [1], []),  # 12 h late, alone: sent (deferred out of quiet hours)
        ((1, 22, 1), [1], []),  # more than 12 h late, but the latest: sent
        ((2, 10, 0), [2], [1]),  # a second one due at the same tick: only the latest
        ((3, 12, 0), [3], [1, 2]),  # three at once: one text, not three
        ((7, 9, 59), [3], [1, 2]),
        ((7, 10, 0), [7], [1, 2, 3]),
    ],
)
def test_catch_up_sends_only_the_latest_due_prompt(
    tick_at: tuple[int, int, int], sent: list[int], skipped: list[int]
) -> None:
    course = _catch_up(tick_at)
    assert course.prompt_days() == sent
    assert [q.day for q in course.state.prompts if q.skipped] == skipped
    course.run_to(30)  # skipped slots are never sent later
    assert not set(skipped) & set(course.prompt_days())


def test_the_latest_prompt_reached_in_quiet_hours_moves_to_10() -> None:
    course = _catch_up((3, 22, 30))
    [prompt] = course.of("checkin_prompt")
    assert prompt.facts["day"] == 3
    assert prompt.due_at == course.local(4, 10)


def test_skipped_prompts_do_not_count_toward_lost_to_follow_up() -> None:
    course = _catch_up((3, 12, 0))  # days 1 and 2 skipped, 3 sent
    course.run_to(16, 9, 59)  # counted: 3, 7, 14 → due 48 h after day 14's prompt
    assert course.of("lost_to_follow_up") == []
    course.run_to(16, 10, 0)
    [page] = course.of("lost_to_follow_up")
    assert page.dedupe_key == "p-1:lost_to_follow_up:day3"


def test_a_jump_raises_the_other_timers_late_rather_than_not_at_all() -> None:
    course = Course(enroll_day=-1)
    course.run_to(3, 12)  # prompts 1, 2, 3 sent one by one, unanswered
    course.tick(course.local(60))  # the clock jumps past the day-5 deadline
    [page] = course.of("lost_to_follow_up")
    assert page.dedupe_key == "p-1:lost_to_follow_up:day1"
    assert page.due_at == course.local(60, 12)  # late, not skipped
    assert course.prompt_days() == [1, 2, 3, 56]


def test_one_decision_never_sends_two_prompts() -> None:
    course = Course(enroll_day=-1)
    for day in (5, 40, 200, 400):
        result = course.tick(course.local(day))
        assert sum(c.kind == "checkin_prompt" for c in result.commands) <= 1


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(PatientState(patient_id="p"), ClockTicked(), dt.datetime(2026, 1, 1))


def test_reports_before_enrollment_are_evaluated_at_enrollment() -> None:
    from assessor.domain import Report, Reported

    state = PatientState(patient_id="p-3")
    report = Report(
        event_id=new_id(),
        occurred_at=dt.datetime(2026, 3, 10, 18, tzinfo=dt.UTC),
        severity=2,
        note="clear fluid from my nose",
    )
    state = decide(state, Reported(report), report.occurred_at).state
    result = decide(state, Enrolled(profile(surgery=SURGERY)), report.occurred_at)
    assert [c.kind for c in result.commands] == ["red_flag", "care_team_notified"]


def test_a_state_stored_without_a_timer_cursor_gets_one() -> None:
    course = Course()
    legacy = course.state.model_copy(update={"timers_done_until": None})
    result = decide(legacy, ClockTicked(), course.local(0, 12))
    assert result.state.timers_done_until == course.local(0, 12)
    assert next_due(result.state) == course.local(1, 10)
