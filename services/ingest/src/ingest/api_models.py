"""Request and response bodies of the ingest API (the contract's shapes)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AwareDatetime, Field, model_validator

from shared.events import (
    Frozen,
    PatientEnrolledPayload,
    PatientId,
    ReportChannel,
    Severity,
)


class EnrollmentRequest(PatientEnrolledPayload):
    patient_id: PatientId


class SymptomReportRequest(Frozen):
    event_id: uuid.UUID | None = Field(default=None, description="Idempotency key")
    patient_id: PatientId
    occurred_at: AwareDatetime = Field(description="ISO 8601 with an offset")
    severity: Severity | None = None
    note: Annotated[str, Field(max_length=1000)] | None = None
    source: ReportChannel = "app"

    @model_validator(mode="after")
    def _severity_or_note(self) -> SymptomReportRequest:
        if self.severity is None and not (self.note and self.note.strip()):
            raise ValueError("at least one of severity and note is required")
        return self


class ClockRequest(Frozen):
    now: AwareDatetime


class Accepted(Frozen):
    event_id: uuid.UUID
