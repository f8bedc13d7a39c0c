"""Shared helpers for the rules tests: a patient's course driven through ``decide``.

(No tests here: a helper module, so pytest does not collect it.)
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections import Counter
from zoneinfo import ZoneInfo

from assessor.domain import (
    DEFAULT_RULES,
    ClockTicked,
    ConsentUpdated,
    Decision,
    Enrolled,
    Input,
    PatientState,
    Report,
    Reported,
    RuleSettings,
    decide,
    next_due,
    phase_of,
)
from shared.events import CareTeam, PatientEnrolledPayload, SendNotificationPayload

SURGERY = dt.date(2026, 3, 2)  # Chicago's DST starts on day 6 (2026-03-08)
ON_CALL = "+15550001111"
BACKUP = "+15550002222"
PHONE = "+15551230001"

_ids = itertools.count(1)


def new_id() -> uuid.UUID:
    return uuid.UUID(int=next(_ids))


def profile(
    tz: str = "America/Chicago",
    surgery: dt.date = SURGERY,
    baseline: int = 3,
    consent: bool = True,
    team_tz: str | None = None,
    language: str = "en",
    backup: str | None = BACKUP,
) -> PatientEnrolledPayload:
    return PatientEnrolledPayload(
        phone=PHONE,
        timezone=tz,
        language=language,  # type: ignore[arg-type]
        surgery_date=surgery,
        baseline_severity=baseline,
        care_team=CareTeam(on_call=ON_CALL, backup=backup, timezone=team_tz),
        sms_consent=consent,
    )


def at_local(
    tz: str, surgery: dt.date, day: int, hour: int = 12, minute: int = 0, fold: int = 0
) -> dt.datetime:
    naive = dt.datetime.combine(surgery + dt.timedelta(days=day), dt.time(hour, minute))
    return naive.replace(tzinfo=ZoneInfo(tz), fold=fold).astimezone(dt.UTC)


class Course:
    """One patient: enroll, report, tick; every command sent is kept in ``sent``."""

    def __init__(
        self,
        tz: str = "America/Chicago",
        surgery: dt.date = SURGERY,
        baseline: int = 3,
        enroll_day: int = -7,
        consent: bool = True,
        team_tz: str | None = None,
        language: str = "en",
        backup: str | None = BACKUP,
        rules: RuleSettings = DEFAULT_RULES,
        patient_id: str = "p-1",
    ) -> None:
        self.tz = tz
        self.surgery = surgery
        self.rules = rules
        self.state = PatientState(patient_id=patient_id)
        self.sent: list[SendNotificationPayload] = []
        self.profile = profile(tz, surgery, baseline, consent, team_tz, language, backup)
        self.apply(Enrolled(self.profile), self.local(enroll_day, 9))

    def local(self, day: int, hour: int = 12, minute: int = 0, fold: int = 0) -> dt.datetime:
        return at_local(self.tz, self.surgery, day, hour, minute, fold)

    def apply(self, event: Input, now: dt.datetime) -> Decision:
        result = decide(self.state, event, now, self.rules)
        self.state = result.state
        self.sent.extend(result.commands)
        return result

    def report(
        self,
        day: int,
        severity: int | None,
        hour: int = 12,
        minute: int = 0,
        note: str | None = None,
        recorded: dt.datetime | None = None,
        event_id: uuid.UUID | None = None,
        tick: bool = True,
    ) -> Decision:
        """A report on ``day`` at ``hour:minute``; by default the clock is first run to it."""
        occurred = self.local(day, hour, minute)
        if tick and recorded is None:
            self.run_until(occurred)
        report = Report(
            event_id=event_id or new_id(), occurred_at=occurred, severity=severity, note=note
        )
        return self.apply(Reported(report), recorded or occurred)

    def consent(self, value: bool, now: dt.datetime) -> Decision:
        return self.apply(ConsentUpdated(value), now)

    def tick(self, now: dt.datetime) -> Decision:
        return self.apply(ClockTicked(), now)

    def run_until(self, instant: dt.datetime) -> list[SendNotificationPayload]:
        """Tick at every ``next_due`` up to ``instant`` (as the shell's timer index would)."""
        out: list[SendNotificationPayload] = []
        while (due := next_due(self.state, self.rules)) is not None and due <= instant:
            out.extend(self.tick(due).commands)
        return out

    def run_to(self, day: int, hour: int = 12, minute: int = 0) -> list[SendNotificationPayload]:
        instant = self.local(day, hour, minute)
        out = self.run_until(instant)
        out.extend(self.tick(instant).commands)
        return out

    @property
    def phase(self) -> str | None:
        return phase_of(self.state, self.rules)

    def kinds(self, audience: str | None = None) -> Counter[str]:
        return Counter(c.kind for c in self.sent if audience in (None, c.audience))

    def of(self, kind: str) -> list[SendNotificationPayload]:
        return [c for c in self.sent if c.kind == kind]

    def prompt_days(self) -> list[int]:
        return [int(c.facts["day"]) for c in self.of("checkin_prompt")]  # type: ignore[arg-type]
