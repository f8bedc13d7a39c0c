"""The SMS sandbox: a local stand-in for Twilio's Messages API, its status callbacks and
its inbound-message webhooks. This module composes the routers and the error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from sms_sandbox.calls import calls_router
from sms_sandbox.controls import controls_router
from sms_sandbox.messages_api import messages_router
from sms_sandbox.sandbox import Sandbox, twilio_error
from sms_sandbox.settings import SandboxSettings
from sms_sandbox.twilio_wire import API_VERSION, TwilioApiError

log = logging.getLogger(__name__)


def create_app(settings: SandboxSettings | None = None) -> FastAPI:
    settings = settings or SandboxSettings()
    sandbox = Sandbox(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("SMS sandbox for account %s ready", settings.account_sid)
        try:
            yield
        finally:
            await sandbox.aclose()

    app = FastAPI(title="SMS sandbox", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.sandbox = sandbox

    async def on_twilio_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, TwilioApiError)
        return twilio_error(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.startswith(f"/{API_VERSION}/"):
            if exc.status_code == 404:
                return twilio_error(TwilioApiError(20404))
            return JSONResponse(
                {"code": exc.status_code, "message": str(exc.detail), "status": exc.status_code},
                status_code=exc.status_code,
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    app.add_exception_handler(TwilioApiError, on_twilio_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.include_router(calls_router(sandbox))  # Twilio's Calls resource, /sandbox/calls
    app.include_router(messages_router(sandbox))
    app.include_router(controls_router(sandbox))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return PlainTextResponse(generate_latest(sandbox.registry), media_type=CONTENT_TYPE_LATEST)

    return app
