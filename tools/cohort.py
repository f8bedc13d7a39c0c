"""A synthetic cohort whose courses follow the published distribution (recovery-rules.md).

Pure and seeded: ``make_cohort(n, seed)`` gives the same patients every time. Each patient
has a course — severity by day since surgery — and answers check-in prompts with it.

Published course among patients who end up spasm-free [3]: 35% by 1 week, 51% by 1 month,
73% by 3 months, 87% by 6 months, 97% by 12 months. A silent period (relief, then return,
1–10 days, mean 2.4) in 48% of the cured [2]; long-term relief 80–90%; recurrence after
success 1–3%; a few percent worsen; red flags are rare.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field

#: (day, cumulative share spasm-free among the eventually cured) — the published curve.
PUBLISHED = ((7, 0.35), (30, 0.51), (91, 0.73), (182, 0.87), (365, 0.97))
PROMPT_DAYS = (1, 2, 3, 7, 14, 21, 28, *range(42, 183, 14), *range(212, 363, 30))
TIMEZONES = (
    "America/Chicago",
    "America/New_York",
    "America/Los_Angeles",
    "America/Mexico_City",
    "Europe/Madrid",
    "Asia/Tokyo",
)
RED_FLAG_NOTES = {
    "en": "my face is drooping and I have a fever",
    "es": "tengo fiebre y la cara caída",
}


@dataclass(frozen=True)
class Course:
    patient_id: str
    language: str
    timezone: str
    baseline: int
    cured_day: int | None  # first day spasm-free for good (None: not within the year)
    silent_days: int  # relief on days 1..silent_days, then return (0: no silent period)
    worsening_day: int | None = None  # from this day, worse than before surgery
    recurrence_day: int | None = None  # twitching back after being cured
    red_flag_day: int | None = None
    stops_answering_day: int | None = None  # lost to follow-up from this day
    answer_rate: float = 0.85
    notes: dict[int, str] = field(default_factory=dict)

    def severity(self, day: int) -> int:
        if self.worsening_day is not None and day >= self.worsening_day:
            return min(4, self.baseline + 1)
        if self.recurrence_day is not None and day >= self.recurrence_day:
            return 2
        if 1 <= day <= self.silent_days:
            return 0
        if self.cured_day is not None and day >= self.cured_day:
            return 0
        # Fading from the baseline towards 1 as the nerve heals.
        horizon = self.cured_day or 400
        fade = max(0.0, 1 - day / horizon)
        return max(1, round(1 + (self.baseline - 1) * fade))

    def answers(self, day: int, rng: random.Random) -> bool:
        if self.stops_answering_day is not None and day >= self.stops_answering_day:
            return False
        return rng.random() < self.answer_rate


def sample_cured_day(rng: random.Random) -> int | None:
    """Time to spasm-free, by linear interpolation within the published curve."""
    u = rng.random()
    points = ((0, 0.0), *PUBLISHED)
    shares = [s for _, s in points]
    i = bisect.bisect_left(shares, u)
    if i >= len(points):
        return None  # the 3% not spasm-free by 12 months
    (d0, s0), (d1, s1) = points[i - 1], points[i]
    return max(1, round(d0 + (d1 - d0) * (u - s0) / (s1 - s0)))


def make_cohort(n: int = 200, seed: int = 7, prefix: str = "demo") -> list[Course]:
    rng = random.Random(seed)  # noqa: S311 - a seeded simulation, not security
    courses = []
    for i in range(n):
        cured = rng.random() < 0.9  # long-term relief 80–90%
        cured_day = sample_cured_day(rng) if cured else None
        silent = 0
        if cured_day is not None and cured_day > 7 and rng.random() < 0.48 / 0.65:
            # Among those cured after the first week; overall about half of the cured.
            silent = min(3, max(1, round(rng.expovariate(1 / 2.4))))
        roll = rng.random()
        language = "es" if rng.random() < 0.25 else "en"
        course = Course(
            patient_id=f"{prefix}-{i:04d}",
            language=language,
            timezone=rng.choice(TIMEZONES),
            baseline=rng.choice((2, 3, 3, 3, 4, 4)),
            cured_day=cured_day,
            silent_days=silent,
            worsening_day=rng.randint(10, 60) if roll < 0.03 else None,
            recurrence_day=(
                rng.randint(240, 330)
                if 0.03 <= roll < 0.05 and cured_day is not None and cured_day < 150
                else None
            ),
            red_flag_day=rng.randint(2, 12) if 0.05 <= roll < 0.08 else None,
            stops_answering_day=rng.randint(14, 120) if 0.08 <= roll < 0.13 else None,
        )
        if course.red_flag_day is not None:
            course.notes[course.red_flag_day] = RED_FLAG_NOTES[language]
        courses.append(course)
    return courses
