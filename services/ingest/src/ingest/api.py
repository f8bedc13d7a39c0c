"""The answers every ingest router gives alike: 422 for one field, the one 503 for an
outage, and the error responses the OpenAPI document lists."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import Response

from ingest.api_models import ErrorBody
from ingest.context import unavailable
from shared.transient import UNAVAILABLE
from shared.web import ApiError, error_response

log = logging.getLogger(__name__)

#: Idempotency keys are ids clients choose: printable ASCII, no spaces.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Makes a retried request return the same answer and publish one event",
    ),
]


def invalid(field: str, message: str) -> ApiError:
    return ApiError(
        422, "invalid_fields", "Some fields are invalid.", [{"field": field, "message": message}]
    )


def error_doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_doc("Malformed JSON, or a body that is not a JSON object"),
    401: error_doc("Missing or invalid bearer token"),
    403: error_doc("The token lacks the role, scope or care team"),
    413: error_doc("Body over 64 KiB"),
    422: error_doc("Invalid fields"),
    503: error_doc("Kafka or the database unreachable; nothing recorded (safe to retry)"),
}


def install_unavailable_handler(app: FastAPI) -> None:
    """Every outage a route meets (``shared.transient.UNAVAILABLE``) answers the contract's
    503: the route's transaction has rolled back, so nothing was recorded or published.

    Logged by route template and error type only: the path and the error's text can carry
    a patient id or data."""

    async def on_unavailable(request: Request, exc: Exception) -> Response:
        where = getattr(request.scope.get("route"), "path", "?")
        log.warning("%s %s not recorded: %s", request.method, where, type(exc).__name__)
        return error_response(unavailable())

    for kind in UNAVAILABLE:
        if issubclass(kind, Exception):  # every one is; Starlette takes no BaseException
            app.add_exception_handler(kind, on_unavailable)
