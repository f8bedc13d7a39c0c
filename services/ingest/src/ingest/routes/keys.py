"""The patients' data keys for the platform's services (``/internal/v1/keys``)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ingest.context import Caller, Ctx
from shared.auth import Principal
from shared.crypto import PREFETCH_BATCH
from shared.events import PATIENT_ID_PATTERN
from shared.web import ApiError

router = APIRouter(include_in_schema=False)


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_ids: Annotated[
        list[Annotated[str, StringConstraints(pattern=PATIENT_ID_PATTERN)]],
        Field(min_length=1, max_length=PREFETCH_BATCH),
    ]


def _only_services(ctx: Ctx, caller: Principal) -> None:
    if not (caller.development or (caller.client in ctx.settings.key_client_ids)):
        raise ApiError(403, "forbidden", "Only the platform's services may fetch keys.")


@router.get("/internal/v1/keys/{patient_id}")
async def patient_key(
    patient_id: Annotated[str, Path(pattern=PATIENT_ID_PATTERN)], ctx: Ctx, caller: Caller
) -> dict[str, str]:
    """A patient's data key, for the services that read the patient's events (their
    OAuth2 clients, ``KEY_CLIENTS``; the development credential in development)."""
    _only_services(ctx, caller)
    key = await ctx.res.keyring.key(patient_id)
    if key is None:
        raise ApiError(404, "unknown_patient", "No key: no such patient, or erased.")
    return {"key": base64.b64encode(key).decode()}


@router.post("/internal/v1/keys")
async def patient_keys(body: KeyRequest, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    """Many patients' keys in one request (a consumer's batch); unknown ones left out."""
    _only_services(ctx, caller)
    found = await ctx.res.keyring.keys(sorted(set(body.patient_ids)))
    return {"keys": {p: base64.b64encode(k).decode() for p, k in found.items()}}
