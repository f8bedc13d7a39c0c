"""The assessor's web pages: the recovery read API, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

import asyncpg
import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from assessor import projection
from assessor.metrics import refresh_cohort_metrics
from assessor.store import Store
from shared.audit import AuditTrail
from shared.auth import Authenticator, Forbidden, Unauthorized, may
from shared.db import answers
from shared.web import error_body

log = logging.getLogger(__name__)


def error(
    view: View, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The contract's error body, with ``headers`` added."""
    response: Response = view.bytes(
        error_body(code, message), content_type="application/json", status=status
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def install_views(
    app: faust.App, *, store: Store, authenticator: Authenticator, trail: AuditTrail
) -> None:
    """Register the assessor's pages on ``app`` (faust's own views are off: ``app._App``)."""

    @app.page("/v1/patients/{patient_id}/recovery")
    class RecoveryView(View):
        async def get(self, request: Request, patient_id: str) -> Response:
            try:
                caller = await authenticator.authenticate(request.headers.get("Authorization"))
            except Unauthorized as exc:
                return error(
                    self,
                    401,
                    "unauthorized",
                    exc.message,
                    {"WWW-Authenticate": exc.www_authenticate},
                )
            found = None
            try:
                if may(caller, "patient.read"):
                    found = await projection.load(await store.get(), patient_id)
                remote = getattr(request, "remote", None)  # aiohttp's: the client's address
                await trail.guard(
                    caller,
                    "patient.read",
                    patient_id=patient_id,
                    resource="recovery",
                    team=found[1] if found else None,
                    source=str(remote) if remote else None,
                )
            except Forbidden:
                return error(self, 403, "forbidden", "Your credentials do not allow this.")
            except (TimeoutError, OSError, asyncpg.PostgresError):
                return error(self, 503, "unavailable", "The database is unreachable. Retry.")
            if found is None:
                return error(self, 404, "unknown_patient", "No recovery record for that id.")
            return self.json(found[0])

    @app.page("/healthz")
    class Healthz(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Readyz(View):
        async def get(self, request: Request) -> Response:
            pool = None
            with contextlib.suppress(Exception):
                pool = await asyncio.wait_for(store.get(), 2)
            checks = {"postgres": await answers(pool)}
            consumer = app.consumer
            checks["kafka"] = bool(
                not app.rebalancing
                and consumer is not None
                and consumer.assignment()
                and cast(Any, app.tables).recovery.completed.is_set()
            )
            ok = all(checks.values())
            return self.json(
                {"status": "ok" if ok else "unavailable", "checks": checks},
                status=200 if ok else 503,
            )

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            try:
                await refresh_cohort_metrics(await asyncio.wait_for(store.get(), 2))
            except Exception:
                log.warning("cohort metrics refresh failed", exc_info=True)
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])
