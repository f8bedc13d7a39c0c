"""The patient's calendar: day numbers, local wall times, quiet hours and day hours.

Day spans are measured on the patient's calendar and wall clock, never in elapsed hours, so
DST never shortens or lengthens them (the remission run's 14 days, "at most one reassurance
per 14 days" and the 30-day prompt spacing count calendar days; noon to noon across a
spring-forward is 14 days). The 24-hour recent-report skip and the 48-hour lost-to-follow-up
wait are elapsed hours, as the rules page writes them.

The two cached functions are pure and keyed by value (dates, times, zone names), so an
entry can never be stale; they are memoized only for speed.
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

from assessor.domain.settings import RuleSettings
from shared.events import PatientEnrolledPayload


@functools.lru_cache(maxsize=1 << 16)  # pure: memoized only for speed
def day_number(surgery_date: dt.date, instant: dt.datetime, tz: str) -> int:
    """Calendar days from surgery to the patient's local date of ``instant`` (surgery = 0)."""
    return (instant.astimezone(ZoneInfo(tz)).date() - surgery_date).days


@functools.lru_cache(maxsize=1 << 16)  # pure: memoized only for speed
def local_instant(date: dt.date, time: dt.time, tz: str) -> dt.datetime:
    """The UTC instant of a local wall time (a time skipped by DST maps to just after the gap,
    a repeated one to its first occurrence)."""
    return dt.datetime.combine(date, time, tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


def day_start(surgery_date: dt.date, day: int, tz: str) -> dt.datetime:
    """The first instant of day ``day``."""
    return local_instant(surgery_date + dt.timedelta(days=day), dt.time(0), tz)


def slot(profile: PatientEnrolledPayload, day: int, time: dt.time) -> dt.datetime:
    """The instant of local ``time`` on the patient's day ``day``."""
    return local_instant(profile.surgery_date + dt.timedelta(days=day), time, profile.timezone)


def wall(instant: dt.datetime, tz: str) -> dt.datetime:
    """The naive local wall time of ``instant``: differences of these are calendar spans."""
    return instant.astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def utc(instant: dt.datetime) -> dt.datetime:
    """``instant`` in UTC; a naive ``now`` is refused (time is always explicit)."""
    if instant.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return instant.astimezone(dt.UTC)


def out_of_quiet_hours(at: dt.datetime, tz: str, to: dt.time, rules: RuleSettings) -> dt.datetime:
    """``at``, or ``to`` on the morning that ends the quiet hours ``at`` falls in.

    Quiet hours (21:00–08:00, the patient's zone) are half-open: 08:00 is not quiet, 21:00
    is. A message due in them moves to ``to`` (08:00, prompts 10:00) that morning, or the
    next morning after 21:00."""
    local = at.astimezone(ZoneInfo(tz))
    t = local.time()
    start, end = rules.quiet_start, rules.quiet_end
    if start > end:  # the usual case: the quiet window wraps midnight
        if end <= t < start:
            return at
        date = local.date() + dt.timedelta(days=1) if t >= start else local.date()
    else:
        if not start <= t < end:
            return at
        date = local.date()
    return local_instant(date, to, tz)


def into_day_hours(at: dt.datetime, tz: str, rules: RuleSettings) -> dt.datetime:
    """``at``, or the next 08:00 when it is outside the care team's day hours.

    Day hours (08:00–18:00, the care team's zone, the patient's when the team has none) are
    half-open: 08:00 is a day hour, 18:00 is after hours. Only routine alerts move; urgent
    ones, and ``care_team_notified`` after a red flag, are due at once."""
    local = at.astimezone(ZoneInfo(tz))
    t = local.time()
    if rules.care_team_day_start <= t < rules.care_team_day_end:
        return at
    date = local.date() if t < rules.care_team_day_start else local.date() + dt.timedelta(days=1)
    return local_instant(date, rules.care_team_day_start, tz)
