"""The console's web app: composes the lifespan, headers and probes with the page modules."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from console import projector
from console.actions import install_alert_actions, install_enrollment
from console.pages import install_pages
from console.principal import Authenticate, nobody
from console.services import Services
from console.settings import ConsoleSettings
from console.web import HERE, Console, install_error_handler, utcnow
from shared.crypto import EventCodec
from shared.db import answers, create_pool, migrate
from shared.kafka import create_producer
from shared.web import BodyLimitMiddleware, install_probes

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def create_app(
    settings: ConsoleSettings,
    authenticate: Authenticate = nobody,
    *,
    wall: Callable[[], dt.datetime] = utcnow,
    extra_routes: Callable[[FastAPI], None] | None = None,
    project: bool = True,
) -> FastAPI:
    """The console. ``authenticate`` tells who is signed in (the sign-in module's, or a
    test's); ``extra_routes`` adds the sign-in's own routes; ``project=False`` serves a
    read model someone else fills (the benchmark's)."""
    codec = EventCodec(settings.keyring())  # erasure (helper 2): patient fields sealed
    console = Console(settings, authenticate, wall, codec)
    state = console.state
    # Logout is a form post answered by a redirect to the IdP's end-session endpoint, and
    # browsers hold redirects after a form to form-action too: the issuer's origin is allowed.
    issuer = urlsplit(settings.oidc_issuer)
    headers = dict(SECURITY_HEADERS)
    headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
        "form-action 'self'", f"form-action 'self' {issuer.scheme}://{issuer.netloc}"
    )

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url.get_secret_value())
        await migrate(pool, "console", "console")
        app_.state.pool = pool  # the sign-in's sessions live in the console's schema too
        producer: AIOKafkaProducer = create_producer(
            settings.kafka_bootstrap, "console", principal="console"
        )
        await producer.start()
        consumer = projector.consumer(settings.kafka_bootstrap, settings.group_id)
        services = Services(settings.ingest_url, settings.assessor_url, settings.notifier_url)
        wake = asyncio.Event()
        if project:
            await consumer.start()
            task = asyncio.create_task(
                projector.run(pool, consumer, wake, codec, producer), name="projection"
            )
        else:
            task = asyncio.create_task(_idle(), name="no-projection")
        state.update(pool=pool, producer=producer, consumer=consumer, services=services,
                     task=task, wake=wake)  # fmt: skip
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if project:
                await consumer.stop()
            await producer.stop()
            await services.close()
            await console.trail.close()
            await pool.close()

    app = FastAPI(title="HFS recovery — care-team console", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)  # fmt: skip
    app.add_middleware(BodyLimitMiddleware)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for k, v in headers.items():
            response.headers.setdefault(k, v)
        return response

    async def ready() -> dict[str, bool]:
        checks = {"postgres": await answers(state.get("pool"))}
        consumer = state.get("consumer")
        checks["kafka"] = not project or (
            isinstance(consumer, AIOKafkaConsumer) and bool(consumer.assignment())
        )
        task = state.get("task")
        checks["projection"] = isinstance(task, asyncio.Task) and not task.done()
        checks["assets"] = console.htmx_file.is_file()
        return checks

    install_probes(app, ready)
    install_error_handler(app, console)
    install_pages(app, console)
    install_alert_actions(app, console)
    install_enrollment(app, console)

    @app.get("/signed-out", response_class=HTMLResponse)
    async def signed_out(request: Request) -> HTMLResponse:
        return console.templates.TemplateResponse(request, "signed_out.html", {"user": None})

    @app.get("/assets/htmx.min.js")
    async def htmx() -> Response:
        if not console.htmx_file.is_file():
            return Response(status_code=404)
        return FileResponse(console.htmx_file, media_type="text/javascript")

    if extra_routes is not None:
        extra_routes(app)
    state["login_path"] = getattr(app.state, "login_path", None)
    return app


async def _idle() -> None:
    await asyncio.Event().wait()
