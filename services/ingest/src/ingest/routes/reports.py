"""Symptom reports from the app or a clinician (``POST /v1/symptom-reports``)."""

from __future__ import annotations

import logging

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ingest import registry
from ingest.api import COMMON_ERRORS, IdempotencyKey, error_doc, invalid
from ingest.api_models import Accepted, SymptomReportRequest
from ingest.context import Caller, Ctx, IngestContext
from ingest.unit_of_work import accepted, derived_id
from shared.auth import may
from shared.events import SymptomReported, SymptomReportedPayload
from shared.kafka import publish
from shared.logs import patient_ref
from shared.topics import PATIENT_EVENTS
from shared.web import ApiError, client_address

log = logging.getLogger(__name__)

router = APIRouter()

SCOPE = "symptom-report"


@router.post(
    "/v1/symptom-reports",
    status_code=202,
    response_model=Accepted,
    responses={
        404: error_doc("Unknown patient"),
        409: error_doc("The event_id (idempotency key) was used with another body"),
        **COMMON_ERRORS,
    },
)
async def report(
    body: SymptomReportRequest,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record one symptom report. ``event_id`` (or, without one, ``Idempotency-Key``)
    makes a retry safe: the same id twice is accepted twice and counted once."""
    res = ctx.res
    team: str | None = None
    if caller.teams is not None and may(caller, "report.write"):
        team = await registry.patient_team(res.pool, body.patient_id)
    await ctx.trail.guard(
        caller,
        "report.write",
        patient_id=body.patient_id,
        resource="symptom-report",
        team=team,
        source=client_address(request),
    )
    key = str(body.event_id) if body.event_id is not None else idempotency_key
    if key is None:
        # Nothing to remember: two reads, then the publish, with no connection held while
        # the broker acknowledges (its event id is new, so a retry is a new report; send an
        # event_id to make retries safe).
        event = await _checked(ctx, res.pool, body, idempotency_key)
        response = accepted(event.event_id)
        await publish(res.producer, PATIENT_EVENTS, event, codec=res.codec)
    else:
        fingerprint = registry.fingerprint(body.model_dump(mode="json", exclude={"event_id"}))
        async with ctx.unit_of_work(SCOPE, key, fingerprint) as uow:
            if uow.replay is not None:
                return uow.replay
            event = await _checked(ctx, uow.conn, body, idempotency_key)
            response = uow.accept(PATIENT_EVENTS, event)
    log.info(
        "symptom reported",
        extra={"patient": patient_ref(body.patient_id), "event_id": str(event.event_id)},
    )
    return response


async def _checked(
    ctx: IngestContext,
    conn: asyncpg.Connection | asyncpg.Pool,
    body: SymptomReportRequest,
    idempotency_key: str | None,
) -> SymptomReported:
    """The report as an event, once its time and its patient are known to be right."""
    now = await ctx.clock_now(conn)
    if body.occurred_at > now + ctx.settings.max_future_skew:
        raise invalid("occurred_at", "is in the future")
    if body.occurred_at < now - ctx.settings.max_report_age:
        raise invalid("occurred_at", "is too far in the past")
    if not await registry.patient_exists(conn, body.patient_id):
        raise ApiError(
            404,
            "unknown_patient",
            "No patient is enrolled with that id.",
            [{"field": "patient_id", "message": "not enrolled"}],
        )
    return SymptomReported(
        event_id=body.event_id or derived_id(SCOPE, idempotency_key),
        occurred_at=body.occurred_at,
        recorded_at=now,
        patient_id=body.patient_id,
        source="api",
        payload=SymptomReportedPayload(severity=body.severity, note=body.note, channel=body.source),
    )
