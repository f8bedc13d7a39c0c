"""Request and response bodies of the ingest API (the contract's shapes), and the error
body every non-2xx answer carries (documented in the OpenAPI schema)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from shared.events import (
    DEFAULT_TEAM,
    E164_PATTERN,
    Frozen,
    Language,
    PatientEnrolledPayload,
    PatientId,
    ReportChannel,
    TeamName,
)

# Numbers and booleans must be JSON numbers and booleans: "3" or 3.0 for a grade, or
# "yes" for consent, is a client bug to report, not to guess at.
Grade = Annotated[StrictInt, Field(ge=0, le=4, description="0 none … 4 severe")]
BaselineGrade = Annotated[StrictInt, Field(ge=1, le=4)]


def _iso_text(value: object) -> object:
    """Dates and instants are ISO 8601 strings (pydantic would also take Unix seconds)."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string")
    return value


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_text),
    Field(description="ISO 8601 with an offset", examples=["2026-03-09T18:30:00-05:00"]),
]
Day = Annotated[dt.date, BeforeValidator(_iso_text), Field(examples=["2026-03-02"])]


def _iana_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("must be an IANA time zone name such as America/Chicago") from exc
    return value


#: An IANA time zone name: the pattern gives the shape, the zone database decides.
Zone = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$",
        examples=["America/Chicago"],
    ),
    AfterValidator(_iana_zone),
]


def _e164(value: str) -> str:
    """A phone number in canonical E.164 form that could exist.

    ``is_possible_number`` (the length fits the country's plan), not ``is_valid_number``
    (the number falls in an allocated range): the contract's examples are fictional
    +1555… numbers and Twilio's test credentials use its magic +1500555… numbers, which
    are unallocated, so ``is_valid_number`` would refuse exactly the numbers development,
    demos and tests use. Twilio itself answers 21211 for numbers that cannot receive texts.
    """
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("must be an E.164 phone number such as +15551230001") from None
    canonical = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if canonical != value or not phonenumbers.is_possible_number(parsed):
        raise ValueError("must be an E.164 phone number such as +15551230001")
    return value


E164Phone = Annotated[
    str,
    Field(
        pattern=E164_PATTERN,
        max_length=16,
        description="E.164 phone number",
        examples=["+15551230001"],
    ),
    AfterValidator(_e164),
]


CareTeamPhone = Annotated[E164Phone, Field(examples=["+15550001111"])]


class CareTeamRequest(Frozen):
    on_call: CareTeamPhone
    backup: CareTeamPhone | None = None
    timezone: Zone | None = None
    team: TeamName = Field(default=DEFAULT_TEAM, examples=["team-a"])


class EnrollmentRequest(Frozen):
    patient_id: PatientId
    phone: E164Phone
    timezone: Zone
    language: Language
    surgery_date: Day
    baseline_severity: BaselineGrade
    care_team: CareTeamRequest
    sms_consent: StrictBool

    def payload(self) -> PatientEnrolledPayload:
        return PatientEnrolledPayload.model_validate(self.model_dump(exclude={"patient_id"}))


class SymptomReportRequest(Frozen):
    event_id: uuid.UUID | None = Field(default=None, description="Idempotency key")
    patient_id: PatientId
    occurred_at: Instant
    severity: Grade | None = None
    note: Annotated[str, Field(max_length=1000)] | None = None
    source: ReportChannel = "app"

    @model_validator(mode="after")
    def _severity_or_note(self) -> SymptomReportRequest:
        if self.severity is None and not (self.note and self.note.strip()):
            raise ValueError("at least one of severity and note is required")
        return self


class ConsentRequest(Frozen):
    """A consent change a clinician recorded at the patient's request (as STOP/START)."""

    sms_consent: StrictBool


class ClockRequest(Frozen):
    now: Instant


class Accepted(Frozen):
    event_id: uuid.UUID


# --- the error body ---------------------------------------------------------------------


class ErrorField(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="snake_case, stable: what went wrong")
    message: str = Field(description="a human sentence")
    fields: list[ErrorField]


class ErrorBody(BaseModel):
    error: ErrorDetail
