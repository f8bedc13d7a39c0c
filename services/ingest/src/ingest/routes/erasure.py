"""Erasing a patient on request (``DELETE /v1/patients/{id}``) and its progress."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from ingest import erasure
from ingest.api import COMMON_ERRORS, error_doc
from ingest.api_models import Accepted
from ingest.context import Caller, Ctx
from ingest.unit_of_work import accepted
from shared.audit import ANY_TEAM
from shared.events import PATIENT_ID_PATTERN
from shared.web import ApiError, client_address

router = APIRouter()


@router.delete(
    "/v1/patients/{patient_id}",
    status_code=202,
    response_model=Accepted,
    responses={404: error_doc("Unknown patient (never enrolled, nor erased)"), **COMMON_ERRORS},
)
async def erase_patient(
    patient_id: Annotated[str, Path(pattern=PATIENT_ID_PATTERN)],
    request: Request,
    ctx: Ctx,
    caller: Caller,
) -> Response:
    """Erase the patient everywhere (admin). 202 with the erasure's id; a second DELETE
    answers 202 with the same id. Progress: ``GET /v1/patients/{id}/erasure``."""
    await ctx.trail.guard(
        caller,
        "patient.erase",
        patient_id=patient_id,
        resource="erasure",
        team=ANY_TEAM,
        source=client_address(request),
    )
    started = await ctx.start_erasure(patient_id, "request", caller.sub)
    if started is None:
        raise ApiError(404, "unknown_patient", "No patient is enrolled with that id.")
    return accepted(started.erasure_id)


@router.get(
    "/v1/patients/{patient_id}/erasure",
    responses={404: error_doc("No erasure of that patient"), **COMMON_ERRORS},
)
async def erasure_status(
    patient_id: Annotated[str, Path(pattern=PATIENT_ID_PATTERN)],
    request: Request,
    ctx: Ctx,
    caller: Caller,
) -> dict[str, Any]:
    """``pending`` until every store reported its part ``done`` (admin)."""
    res = ctx.res
    await ctx.trail.guard(
        caller,
        "patient.erase",
        patient_id=patient_id,
        resource="erasure-status",
        team=ANY_TEAM,
        source=client_address(request),
    )
    found = await erasure.status(res.pool, patient_id, ctx.settings.erasure_store_names)
    if found is None:
        raise ApiError(404, "not_found", "No erasure of that patient.")
    return found
