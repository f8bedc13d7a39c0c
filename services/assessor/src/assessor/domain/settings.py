"""Every number of the rules page, as one frozen object whose defaults are the page's.

The page is ``recovery-rules.md`` (``../shared/domain/recovery-rules.md`` from the
repository root, as the README links it). Days are calendar days in the patient's time zone
and surgery day is day 0; a rule's number is changed here and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class RuleSettings:
    """Every number of recovery-rules.md; the defaults are the page's."""

    # phases (days are calendar days in the patient's time zone; surgery day is day 0)
    early_postop_last_day: int = 3
    expected_window_last_day: int = 182
    persistence_day: int = 183
    persistence_recent_day: int = 152
    persistence_min_severity: int = 1
    monitoring_complete_day: int = 365
    monitoring_complete_time: dt.time = dt.time(10)
    # remission: a run of >= 2 zeros spanning >= 14 days (wall clock) from day >= 1
    remission_min_reports: int = 2
    remission_span: dt.timedelta = dt.timedelta(days=14)
    remission_first_day: int = 1
    remission_ignored_day: int = 0  # reports on surgery day neither start nor break a run
    # worsening: (a) above baseline from day 4; (b) two reports >= nadir + 2 from day 30
    worsening_first_day: int = 4
    nadir_first_day: int = 4
    nadir_pair_first_day: int = 30
    nadir_margin: int = 2
    # recurrence after remission: one report >= 2, or two consecutive >= 1
    recurrence_single_severity: int = 2
    recurrence_pair_severity: int = 1
    # lost to follow-up: 48 h after the third unanswered prompt
    lost_to_follow_up_prompts: int = 3
    lost_to_follow_up_wait: dt.timedelta = dt.timedelta(hours=48)
    # patient messages
    reassurance_first_day: int = 1
    reassurance_last_day: int = 182
    reassurance_interval_days: int = 14
    prompt_fixed_days: tuple[int, ...] = (1, 2, 3, 7, 14, 21, 28)
    prompt_biweekly_interval_days: int = 14
    prompt_biweekly_last_day: int = 182
    prompt_monthly_interval_days: int = 30
    prompt_monthly_last_day: int = 362
    prompt_time: dt.time = dt.time(10)
    prompt_skip_after_report: dt.timedelta = dt.timedelta(hours=24)
    remission_prompt_interval_days: int = 30
    # quiet hours (patient's zone) and care-team day hours (care team's zone)
    quiet_start: dt.time = dt.time(21)
    quiet_end: dt.time = dt.time(8)
    deferred_to: dt.time = dt.time(8)
    prompt_deferred_to: dt.time = dt.time(10)
    care_team_day_start: dt.time = dt.time(8)
    care_team_day_end: dt.time = dt.time(18)

    @functools.cached_property
    def prompt_days(self) -> tuple[int, ...]:
        """1, 2, 3, 7, 14, 21, 28, then every 14 days through 182, then every 30 through 362."""
        days = list(self.prompt_fixed_days)
        day = days[-1] if days else 0
        while day + self.prompt_biweekly_interval_days <= self.prompt_biweekly_last_day:
            day += self.prompt_biweekly_interval_days
            days.append(day)
        while day + self.prompt_monthly_interval_days <= self.prompt_monthly_last_day:
            day += self.prompt_monthly_interval_days
            days.append(day)
        return tuple(days)


DEFAULT_RULES = RuleSettings()
