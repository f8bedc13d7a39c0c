"""The patients resource: enrollment (``POST /v1/patients``) and consent, read and recorded
by a clinician."""

from __future__ import annotations

import logging
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from ingest import consent as consent_record
from ingest import registry
from ingest.api import COMMON_ERRORS, IdempotencyKey, error_doc, invalid
from ingest.api_models import Accepted, ConsentRequest, EnrollmentRequest
from ingest.context import Caller, Ctx
from ingest.unit_of_work import derived_id
from shared.auth import may
from shared.events import (
    PATIENT_ID_PATTERN,
    ConsentChanged,
    ConsentChangedPayload,
    PatientEnrolled,
)
from shared.logs import patient_ref
from shared.topics import PATIENT_EVENTS
from shared.web import ApiError, client_address

log = logging.getLogger(__name__)

router = APIRouter()


@router.post(
    "/v1/patients",
    status_code=202,
    response_model=Accepted,
    responses={
        409: error_doc(
            "The phone belongs to another patient, or the idempotency key was used "
            "with another body"
        ),
        **COMMON_ERRORS,
    },
)
async def enroll(
    body: EnrollmentRequest,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Enroll a patient, or update the enrollment with the same ``patient_id``."""
    if body.phone in (body.care_team.on_call, body.care_team.backup):
        raise invalid("phone", "must differ from the care team's phones")
    where = client_address(request)
    await ctx.trail.guard(
        caller,
        "patient.write",
        patient_id=body.patient_id,
        resource="enrollment",
        team=body.care_team.team,
        source=where,
    )
    res = ctx.res
    payload = body.payload()
    scope = "enroll"
    settings = ctx.settings
    # The key first, committed on its own: a consumer reading the enrollment must find it
    # (an enrollment that then fails leaves a key for no data).
    await res.keyring.ensure(body.patient_id)
    fingerprint = registry.fingerprint(body.model_dump(mode="json"))
    async with ctx.unit_of_work(scope, idempotency_key, fingerprint) as uow:
        if uow.replay is not None:
            return uow.replay
        conn = uow.conn
        previous_team = await registry.patient_team(conn, body.patient_id)
        if previous_team not in (None, body.care_team.team):
            # Moving a patient to another team takes the right to both.
            await ctx.trail.guard(
                caller,
                "patient.write",
                patient_id=body.patient_id,
                resource="enrollment",
                team=previous_team,
                source=where,
            )
        now = await ctx.clock_now(conn)
        today = now.date()
        earliest, latest = today - settings.surgery_past, today + settings.surgery_future
        if not earliest <= body.surgery_date <= latest:
            raise invalid("surgery_date", f"must be between {earliest} and {latest}")
        try:
            consent = await registry.upsert_patient(conn, body.patient_id, payload, now)
        except (registry.PhoneTaken, asyncpg.UniqueViolationError):
            raise ApiError(
                409,
                "phone_in_use",
                "That phone number belongs to another patient.",
                [{"field": "phone", "message": "already enrolled for another patient"}],
            ) from None
        # An update never changes consent: the event carries the consent on record.
        payload = payload.model_copy(update={"sms_consent": consent})
        event = PatientEnrolled(
            event_id=derived_id(scope, idempotency_key),
            occurred_at=now,
            recorded_at=now,
            patient_id=body.patient_id,
            source="api",
            payload=payload,
        )
        if previous_team is None:  # a first enrollment: the form's consent
            await consent_record.record(
                conn,
                patient_id=body.patient_id,
                sms_consent=consent,
                channel="enrollment_form",
                actor=caller.sub,
                event_id=event.event_id,
                occurred_at=now,
            )
        response = uow.accept(PATIENT_EVENTS, event)
    log.info(
        "patient enrolled",
        extra={"patient": patient_ref(body.patient_id), "event_id": str(event.event_id)},
    )
    return response


@router.post(
    "/v1/patients/{patient_id}/consent",
    status_code=202,
    response_model=Accepted,
    responses={
        404: error_doc("Unknown patient"),
        409: error_doc("The idempotency key was used with another body"),
        **COMMON_ERRORS,
    },
)
async def record_consent(
    body: ConsentRequest,
    patient_id: Annotated[str, Path(pattern=PATIENT_ID_PATTERN)],
    request: Request,
    ctx: Ctx,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record a consent change the patient asked a clinician for: the same
    ``consent.changed`` event (reason ``stop``/``start``) as texting STOP or START."""
    res = ctx.res
    team: str | None = None
    if caller.teams is not None and may(caller, "patient.write"):
        team = await registry.patient_team(res.pool, patient_id)
    await ctx.trail.guard(
        caller,
        "patient.write",
        patient_id=patient_id,
        resource="consent",
        team=team,
        source=client_address(request),
    )
    scope = f"consent:{patient_id}"
    fingerprint = registry.fingerprint(body.model_dump())
    async with ctx.unit_of_work(scope, idempotency_key, fingerprint) as uow:
        if uow.replay is not None:
            return uow.replay
        if not await registry.patient_exists(uow.conn, patient_id):
            raise ApiError(404, "unknown_patient", "No patient is enrolled with that id.")
        now = await ctx.clock_now(uow.conn)
        event = ConsentChanged(
            event_id=derived_id(scope, idempotency_key),
            occurred_at=now,
            recorded_at=now,
            patient_id=patient_id,
            source="api",
            payload=ConsentChangedPayload(
                sms_consent=body.sms_consent, reason="start" if body.sms_consent else "stop"
            ),
        )
        await registry.set_consent(uow.conn, patient_id, body.sms_consent, now)
        await consent_record.record(
            uow.conn,
            patient_id=patient_id,
            sms_consent=body.sms_consent,
            channel="clinician_phone",
            actor=caller.sub,
            event_id=event.event_id,
            occurred_at=now,
        )
        response = uow.accept(PATIENT_EVENTS, event)
    log.info("consent recorded", extra={"patient": patient_ref(patient_id)})
    return response


@router.get(
    "/v1/patients/{patient_id}/consent",
    responses={
        401: error_doc("Missing or invalid bearer token"),
        403: error_doc("The token lacks the role, scope or care team"),
        404: error_doc("Unknown patient"),
        503: error_doc("Database down"),
    },
)
async def read_consent(
    patient_id: Annotated[str, Path(pattern=PATIENT_ID_PATTERN)],
    request: Request,
    ctx: Ctx,
    caller: Caller,
) -> dict[str, object]:
    """The patient's consent now and every change of it: when, how (``channel``:
    enrollment_form, sms_keyword, clinician_phone) and by whom (``actor``: the
    recording user's subject, or "patient by SMS"). Staff of the patient's team."""
    res = ctx.res
    team = None
    if may(caller, "patient.read"):
        team = await registry.patient_team(res.pool, patient_id)
    await ctx.trail.guard(
        caller,
        "patient.read",
        patient_id=patient_id,
        resource="consent",
        team=team,
        source=client_address(request),
    )
    current = await res.pool.fetchval(
        "SELECT sms_consent FROM ingest.patients WHERE patient_id = $1", patient_id
    )
    if current is None:
        raise ApiError(404, "unknown_patient", "No patient is enrolled with that id.")
    changes = await consent_record.history(res.pool, patient_id)
    return {"patient_id": patient_id, "sms_consent": current, "changes": changes}
