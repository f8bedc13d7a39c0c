"""The audit trail, for admins (``GET /v1/audit``): who read or changed patient data."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request

from ingest.api import error_doc, invalid
from ingest.context import Caller, Ctx
from shared.audit import ANY_TEAM, decode_cursor, encode_cursor
from shared.audit import query as audit_query
from shared.events import PATIENT_ID_PATTERN
from shared.web import client_address

router = APIRouter()

AUDIT_FILTERS = {"patient_id", "actor", "since", "until", "cursor", "limit"}


@router.get(
    "/v1/audit",
    responses={
        401: error_doc("Missing or invalid bearer token"),
        403: error_doc("Not an admin"),
        422: error_doc("Invalid filters, or a cursor that is not one of ours"),
        503: error_doc("Database down"),
    },
)
async def read_audit(
    request: Request,
    ctx: Ctx,
    caller: Caller,
    patient_id: Annotated[str | None, Query(pattern=PATIENT_ID_PATTERN)] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    since: Annotated[str | None, Query(max_length=40, examples=["2026-12-01T00:00:00Z"])] = None,
    until: Annotated[str | None, Query(max_length=40, examples=["2026-12-02T00:00:00Z"])] = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, object]:
    """Who read or changed patient data, oldest first (admin). ``next`` continues."""
    unknown = sorted(set(request.query_params) - AUDIT_FILTERS)
    if unknown:
        raise invalid(unknown[0] or "query", "is not a filter of this endpoint")
    start, end = _instant("since", since), _instant("until", until)
    try:
        after = decode_cursor(cursor) if cursor else 0
    except ValueError:
        raise invalid("cursor", "is not a cursor this endpoint returned") from None
    res = ctx.res
    await ctx.trail.guard(
        caller,
        "audit.read",
        patient_id=patient_id,
        resource="audit",
        team=ANY_TEAM,
        source=client_address(request),
    )
    events, last = await audit_query(
        res.pool,
        patient_id=patient_id,
        actor=actor,
        since=start,
        until=end,
        after_seq=after,
        limit=limit,
    )
    return {"events": events, "next": encode_cursor(last) if last is not None else None}


def _instant(name: str, value: str | None) -> dt.datetime | None:
    """A query's ISO 8601 instant; it must carry an offset (422 otherwise)."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise invalid(name, "must be an ISO 8601 instant with an offset, e.g. 2026-12-01T00:00:00Z")
    return parsed
