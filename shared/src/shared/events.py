"""Event contracts: the versioned envelope and every event that crosses a topic.

Events are frozen pydantic models, JSON on the wire, told apart by ``type`` (a
discriminated union). Past tense for facts (``SymptomReported``), imperative for
commands (``SendNotification``). Adding a field is a new ``schema_version``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

PATIENT_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"

PatientId = Annotated[str, Field(pattern=PATIENT_ID_PATTERN, min_length=1, max_length=64)]
#: A care team's name (the patient's, in the enrollment; the staff's, in their token).
TeamName = Annotated[str, Field(pattern=PATIENT_ID_PATTERN, min_length=1, max_length=64)]
DEFAULT_TEAM = "default"
Phone = Annotated[str, Field(pattern=E164_PATTERN, description="E.164 phone number")]
Severity = Annotated[int, Field(ge=0, le=4, description="0 none … 4 severe")]
Language = Literal["en", "es"]


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]


def _iana_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if value != value.strip() or not value or value.startswith("/") or ".." in value:
        raise ValueError("must be an IANA time zone name such as America/Chicago")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("must be an IANA time zone name such as America/Chicago") from exc
    return value


TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(_iana_zone)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- payloads -------------------------------------------------------------------------


class CareTeam(Frozen):
    on_call: Phone
    backup: Phone | None = None
    timezone: TimeZoneName | None = None
    #: Which care team the patient belongs to: bounds who may see and act on them.
    team: TeamName = DEFAULT_TEAM


class PatientEnrolledPayload(Frozen):
    phone: Phone
    timezone: TimeZoneName
    language: Language
    surgery_date: dt.date
    baseline_severity: Annotated[int, Field(ge=1, le=4)]
    care_team: CareTeam
    sms_consent: bool


ReportChannel = Literal["app", "clinician", "sms"]


class SymptomReportedPayload(Frozen):
    severity: Severity | None = None
    note: Annotated[str, Field(max_length=1000)] | None = None
    channel: ReportChannel


class ConsentChangedPayload(Frozen):
    sms_consent: bool
    reason: Literal["stop", "start", "enrollment", "provider_21610"]


MessageStatus = Literal[
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "read",
    "canceled",
    "receiving",
    "received",
]


class MessageStatusReportedPayload(Frozen):
    """Twilio's status callback for one outbound message, as ingest received it."""

    message_sid: Annotated[str, Field(pattern=r"^(SM|MM)[0-9a-fA-F]{32}$")]
    status: MessageStatus
    error_code: int | None = None


class AckReceivedPayload(Frozen):
    """``ACK <code>`` texted by a care-team phone; the notifier matches code and phone."""

    ack_code: Annotated[str, Field(pattern=r"^[A-Z0-9]{4,12}$")]
    from_phone: Phone
    message_sid: str | None = None


class ClockAdvancedPayload(Frozen):
    now: UtcDatetime


Urgency = Literal["routine", "urgent"]
Audience = Literal["patient", "care_team"]
NotificationKind = Literal[
    # patient messages
    "checkin_prompt",
    "reassurance",
    "remission_congrats",
    "care_team_notified",
    "monitoring_complete",
    # care-team alerts
    "six_month_persistence",
    "worsening",
    "recurrence",
    "red_flag",
    "lost_to_follow_up",
]


class SendNotificationPayload(Frozen):
    """A self-contained decision: the notifier needs no patient profile to act on it."""

    dedupe_key: Annotated[str, Field(min_length=3, max_length=200)]
    kind: NotificationKind
    audience: Audience
    urgency: Urgency
    to: Phone
    backup_to: Phone | None = None
    language: Language
    timezone: TimeZoneName
    due_at: UtcDatetime
    facts: dict[str, str | int | None] = Field(default_factory=dict)
    evidence: tuple[uuid.UUID, ...] = ()
    rule: str | None = None
    #: The patient's care team, so the notifier can bound who sees and acknowledges this.
    team: TeamName = DEFAULT_TEAM


class PhaseChangedPayload(Frozen):
    """The assessor moved a patient to another phase (names as in the rules page)."""

    phase: Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]
    previous: Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")] | None = None
    day: int


AlertOutcome = Literal[
    "called_patient", "appointment_booked", "imaging_ordered", "no_action_needed"
]


class Actor(Frozen):
    """Who did something in the console: the token's subject and display name."""

    sub: Annotated[str, Field(min_length=1, max_length=200)]
    name: Annotated[str, Field(max_length=200)] = ""


class AlertOwnedPayload(Frozen):
    alert_id: uuid.UUID
    owner: Actor


class AlertAcknowledgedPayload(Frozen):
    alert_id: uuid.UUID
    by: Actor


class AlertClosedPayload(Frozen):
    alert_id: uuid.UUID
    outcome: AlertOutcome
    note: Annotated[str, Field(max_length=2000)] = ""
    by: Actor


ErasureReason = Literal["request", "retention"]
#: The stores that report an erasure's progress (``GET /v1/patients/{id}/erasure``).
ErasureStore = Literal["ingest", "assessor", "notifier", "provider", "console"]


class PatientErasedPayload(Frozen):
    """The patient's data is to be erased everywhere; their data key is already destroyed."""

    reason: ErasureReason
    #: Who asked (a token's subject, or ``retention``): no patient data.
    requested_by: Annotated[str, Field(min_length=1, max_length=200)]


class ErasureProgressedPayload(Frozen):
    """One store has erased the patient (counts only: what was removed, never what it held)."""

    erasure_id: uuid.UUID
    store: ErasureStore
    outcome: Literal["done", "failed"]
    removed: Annotated[int, Field(ge=0)] = 0
    detail: Annotated[str, Field(max_length=200)] = ""


# --- envelope -------------------------------------------------------------------------


class Envelope(Frozen):
    event_id: uuid.UUID
    schema_version: Literal[1] = 1
    occurred_at: UtcDatetime
    recorded_at: UtcDatetime
    patient_id: PatientId | None
    source: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,31}$")]


class PatientEnrolled(Envelope):
    type: Literal["patient.enrolled"] = "patient.enrolled"
    patient_id: PatientId
    payload: PatientEnrolledPayload


class SymptomReported(Envelope):
    type: Literal["symptom.reported"] = "symptom.reported"
    patient_id: PatientId
    payload: SymptomReportedPayload


class ConsentChanged(Envelope):
    type: Literal["consent.changed"] = "consent.changed"
    patient_id: PatientId
    payload: ConsentChangedPayload


class ClockAdvanced(Envelope):
    type: Literal["clock.advanced"] = "clock.advanced"
    patient_id: None = None
    payload: ClockAdvancedPayload


class MessageStatusReported(Envelope):
    type: Literal["message.status_reported"] = "message.status_reported"
    patient_id: None = None
    payload: MessageStatusReportedPayload


class AckReceived(Envelope):
    type: Literal["page.ack_received"] = "page.ack_received"
    patient_id: None = None
    payload: AckReceivedPayload


class SendNotification(Envelope):
    type: Literal["notification.send"] = "notification.send"
    patient_id: PatientId
    payload: SendNotificationPayload


class PhaseChanged(Envelope):
    type: Literal["recovery.phase_changed"] = "recovery.phase_changed"
    patient_id: PatientId
    payload: PhaseChangedPayload


class AlertOwned(Envelope):
    type: Literal["alert.owned"] = "alert.owned"
    patient_id: PatientId
    payload: AlertOwnedPayload


class AlertAcknowledged(Envelope):
    type: Literal["alert.acknowledged"] = "alert.acknowledged"
    patient_id: PatientId
    payload: AlertAcknowledgedPayload


class AlertClosed(Envelope):
    type: Literal["alert.closed"] = "alert.closed"
    patient_id: PatientId
    payload: AlertClosedPayload


class PatientErased(Envelope):
    type: Literal["patient.erased"] = "patient.erased"
    patient_id: PatientId
    payload: PatientErasedPayload


class ErasureProgressed(Envelope):
    type: Literal["erasure.progressed"] = "erasure.progressed"
    patient_id: PatientId
    payload: ErasureProgressedPayload


Event = Annotated[
    PatientEnrolled
    | SymptomReported
    | ConsentChanged
    | ClockAdvanced
    | SendNotification
    | MessageStatusReported
    | AckReceived
    | PhaseChanged
    | AlertOwned
    | AlertAcknowledged
    | AlertClosed
    | PatientErased
    | ErasureProgressed,
    Field(discriminator="type"),
]
EVENT_TYPES: tuple[type[Envelope], ...] = (
    PatientEnrolled,
    SymptomReported,
    ConsentChanged,
    ClockAdvanced,
    SendNotification,
    MessageStatusReported,
    AckReceived,
    PhaseChanged,
    AlertOwned,
    AlertAcknowledged,
    AlertClosed,
    PatientErased,
    ErasureProgressed,
)
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> Event:
    """Parse one event from the wire; raises ``pydantic.ValidationError`` when invalid."""
    return _ADAPTER.validate_json(raw)


def encode_event(event: Envelope) -> bytes:
    return event.model_dump_json().encode()


def json_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per event type, keyed by its ``type`` value."""
    out: dict[str, dict[str, Any]] = {}
    for model in EVENT_TYPES:
        name = model.model_fields["type"].default
        out[name] = model.model_json_schema()
    return out
