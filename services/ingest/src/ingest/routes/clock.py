"""The clock events are stamped with: read it, and move the simulated one (``/v1/clock``)."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter
from fastapi.responses import Response

from ingest import registry
from ingest.api import COMMON_ERRORS, error_doc
from ingest.api_models import Accepted, ClockRequest
from ingest.context import Caller, Ctx
from ingest.unit_of_work import accepted
from shared.events import ClockAdvanced, ClockAdvancedPayload
from shared.topics import CLOCK, PATIENT_PARTITIONS
from shared.web import ApiError, authorize

router = APIRouter()


@router.get(
    "/v1/clock",
    responses={
        401: error_doc("Missing or invalid bearer token"),
        403: error_doc("Not an operator or admin"),
        503: error_doc("Database down"),
    },
)
async def read_clock(ctx: Ctx, caller: Caller) -> dict[str, object]:
    """The clock events are stamped with: simulated (``null`` until first set) or wall."""
    authorize(caller, "clock")
    if not ctx.settings.simulated_clock:
        return {"now": ctx.wall_clock().isoformat(), "simulated": False}
    now = await registry.simulated_now(ctx.res.pool)
    return {"now": now.isoformat() if now else None, "simulated": True}


@router.post(
    "/v1/clock",
    status_code=202,
    response_model=Accepted,
    responses={
        404: error_doc("Not a simulated clock (SIMULATED_CLOCK=0)"),
        409: error_doc("Earlier than the current clock"),
        **COMMON_ERRORS,
    },
)
async def advance_clock(body: ClockRequest, ctx: Ctx, caller: Caller) -> Response:
    """Move the simulated clock forward (only with ``SIMULATED_CLOCK=1``)."""
    authorize(caller, "clock")
    if not ctx.settings.simulated_clock:
        raise ApiError(404, "not_found", "The clock moves by itself (SIMULATED_CLOCK=0).")
    now = body.now.astimezone(dt.UTC)
    event_id = uuid.uuid4()
    async with ctx.unit_of_work("clock", key=None) as uow:
        current = await registry.lock_clock(uow.conn)
        if current is not None and now < current:
            raise ApiError(
                409,
                "clock_backwards",
                f"The clock is already at {current.isoformat()}; it only moves forward.",
            )
        await registry.set_clock(uow.conn, now)
        event = ClockAdvanced(
            event_id=event_id,
            occurred_at=now,
            recorded_at=now,
            source="clock",
            payload=ClockAdvancedPayload(now=now),
        )
        # Every partition: each worker sees ticks for exactly the partitions it owns.
        for partition in range(PATIENT_PARTITIONS):
            uow.publish(CLOCK, event, partition=partition, sealed=False)
    return accepted(event_id)
