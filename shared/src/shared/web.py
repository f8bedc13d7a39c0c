"""HTTP plumbing shared by the FastAPI services: the contract's error body, bearer auth
(``shared.auth`` behind a FastAPI dependency),
the 64 KiB body limit, and the health and metrics endpoints."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.audit import AuditUnavailable
from shared.auth import (
    Action,
    Authenticator,
    Forbidden,
    Principal,
    Unauthorized,
    require,
    require_team,
)
from shared.metrics import HttpMetricsMiddleware

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


class ApiError(Exception):
    """An error with the contract's JSON body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.headers = headers


def error_body(code: str, message: str, fields: list[dict[str, str]] | None = None) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "fields": fields or []}}
    ).encode()


def error_response(err: ApiError) -> Response:
    return Response(
        error_body(err.code, err.message, err.fields),
        status_code=err.status,
        media_type="application/json",
        headers=err.headers,
    )


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def validation_error(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return ApiError(400, "malformed_json", "The request body is not valid JSON.")
    not_an_object = {"model_attributes_type", "dict_type", "model_type", "missing"}
    if any(tuple(e.get("loc", ())) == ("body",) and e.get("type") in not_an_object for e in errors):
        return ApiError(400, "invalid_body", "The request body must be a JSON object.")
    fields = [
        {"field": _field_name(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid"))}
        for e in errors
    ]
    return ApiError(422, "invalid_fields", "Some fields are invalid.", fields)


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}
        code = codes.get(exc.status_code, "http_error")
        # Keep the exception's headers; for 405, ``Allow`` lists the methods of every route
        # on the path (Starlette names only the first route's when a path has several).
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            # Every route, those of included routers too (FastAPI keeps them nested).
            methods = {
                method
                for route in iter_route_contexts(request.app.router.routes)
                if isinstance(regex := getattr(route, "path_regex", None), re.Pattern)
                and regex.match(request.url.path)
                for method in route.methods or ()
            }
            if methods:
                headers["Allow"] = ", ".join(sorted(methods))
        return error_response(
            ApiError(exc.status_code, code, str(exc.detail), headers=headers or None)
        )

    async def on_forbidden(_: Request, exc: Exception) -> Response:
        return error_response(forbidden())

    async def on_audit_unavailable(_: Request, exc: Exception) -> Response:
        return error_response(
            ApiError(
                503,
                "unavailable",
                "The audit trail cannot be written; nothing was done. Retry.",
            )
        )

    app.add_exception_handler(Forbidden, on_forbidden)
    app.add_exception_handler(AuditUnavailable, on_audit_unavailable)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


#: Declares the bearer scheme in the OpenAPI schema; the check itself is ``Authenticator``'s.
BEARER_SCHEME = HTTPBearer(
    auto_error=False,
    description="An access token from the identity provider (or, in development, API_TOKEN)",
    scheme_name="bearer",
)


def unauthorized(exc: Unauthorized) -> ApiError:
    return ApiError(
        401, "unauthorized", exc.message, headers={"WWW-Authenticate": exc.www_authenticate}
    )


def forbidden() -> ApiError:
    """The contract's 403: nothing about the patient (not even whether it exists)."""
    return ApiError(403, "forbidden", "Your credentials do not allow this.")


def client_address(request: Request) -> str | None:
    """Where a request came from, for the audit trail."""
    return request.client.host if request.client else None


def bearer_auth(authenticator: Authenticator) -> Callable[..., Awaitable[Principal]]:
    """A dependency that answers the caller's ``Principal`` or 401."""

    async def check(
        request: Request,
        _documented: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)],
    ) -> Principal:
        try:
            return await authenticator.authenticate(request.headers.get("authorization"))
        except Unauthorized as exc:
            raise unauthorized(exc) from None

    return check


def authorize(principal: Principal, action: Action) -> None:
    """403 unless the caller's roles or scopes open ``action``."""
    try:
        require(principal, action)
    except Forbidden:
        raise forbidden() from None


def authorize_team(principal: Principal, team: str | None) -> None:
    """403 unless a patient of ``team`` (``None``: unknown) is within the caller's teams."""
    try:
        require_team(principal, team)
    except Forbidden:
        raise forbidden() from None


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413 before anything parses them."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
        seen = 0
        started = False
        exceeded = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # The app turned the interruption into its own answer (FastAPI: 400 "error
                # parsing the body"): answer 413 instead, once, and drop the app's messages.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._reject(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = error_body(
            "payload_too_large", f"The request body is larger than {self.limit} bytes."
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install_probes(
    app: FastAPI,
    ready: Callable[[], Awaitable[dict[str, bool]]],
    refresh_metrics: Callable[[], Awaitable[None]] | None = None,
    stale_loops: Callable[[], list[str]] | None = None,
) -> None:
    """``/healthz`` (alive: 503 when ``stale_loops`` names a background loop whose heartbeat
    is stale), ``/readyz`` (every dependency reachable) and ``/metrics``.

    ``refresh_metrics`` updates gauges computed on scrape (e.g. from the database) first; a
    failure there is logged and the other metrics are served anyway. Every request is counted
    and timed by route template (``http_requests_total``, ``http_request_seconds``).
    """
    app.add_middleware(HttpMetricsMiddleware)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        stale = stale_loops() if stale_loops is not None else []
        if stale:
            return JSONResponse({"status": "unhealthy", "stale_loops": stale}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        checks = await ready()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if refresh_metrics is not None:
            try:
                await refresh_metrics()
            except Exception:
                log.warning("metrics refresh failed", exc_info=True)
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run a service's app with uvicorn: our JSON logging, no access log (request lines
    can carry phone numbers), no server header."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, server_header=False)
