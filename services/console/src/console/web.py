"""The console's request plumbing: who is signed in, forms, rendering, audited reads, errors."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from console import projection, queries, views
from console.principal import Authenticate, Principal, csrf_ok, csrf_token
from console.services import Services
from console.settings import ConsoleSettings
from shared import auth
from shared.audit import AuditTrail, AuditUnavailable
from shared.crypto import EventCodec
from shared.events import Envelope
from shared.kafka import publish
from shared.phases import PHASES
from shared.topics import CARE_TEAM_EVENTS

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
HTMX = ("htmx.org", "2.0.8", "htmx.min.js")  # as pinned in deploy/npm-assets.lock


class PageError(Exception):
    def __init__(
        self, status: int, title: str, message: str, *, signed_in: Principal | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message
        #: Someone signed in who may not use the console: the page offers them sign-out.
        self.signed_in = signed_in


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def local_path(value: str | None, default: str = "/") -> str:
    """Only a path on this site (never ``//host`` or a scheme) may be a redirect target."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def source_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def audit_actor(principal: Principal) -> auth.Principal:
    """The signed-in user as the audit trail records APIs' callers (no token)."""
    return auth.Principal(sub=principal.sub, name=principal.name, client="hfs-console",
                          roles=principal.roles, scopes=frozenset(),
                          teams=frozenset(principal.teams))  # fmt: skip


class Console:
    """What every route needs: the session dependency, rendering, the audit trail and the
    resources the lifespan opens (in ``state``: pool, producer, consumer, services, task)."""

    def __init__(
        self,
        settings: ConsoleSettings,
        authenticate: Authenticate,
        wall: Callable[[], dt.datetime],
        codec: EventCodec,
    ) -> None:
        self.settings = settings
        self.authenticate = authenticate
        self.wall = wall
        self.codec = codec
        self.state: dict[str, Any] = {}
        self.secret = settings.secret_key.get_secret_value().encode()
        assets = Path(settings.assets_dir)
        self.htmx_file = assets / f"{HTMX[0]}-{HTMX[1]}" / HTMX[2]
        self.trail = AuditTrail(settings.audit_url(), "console", wall)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals.update(
            kind_label=views.kind_label,
            phase_label=views.phase_label,
            when=views.when,
            outcomes=views.OUTCOMES,
            phases=PHASES,
            poll_seconds=settings.poll_seconds,
        )

    def pool(self) -> asyncpg.Pool:
        p = self.state.get("pool")
        if not isinstance(p, asyncpg.Pool):
            raise PageError(503, "Starting", "The console is starting. Try again in a moment.")
        return p

    def services(self) -> Services:
        s = self.state.get("services")
        assert isinstance(s, Services)
        return s

    async def signed_in(self, request: Request) -> Principal:
        principal = await self.authenticate(request)
        if principal is None:
            raise PageError(401, "Sign-in required", "Sign in to use the care-team console.")
        if not principal.is_clinician:
            raise PageError(403, "Not allowed", "The console is for clinicians of a care team.",
                            signed_in=principal)  # fmt: skip
        return principal

    async def form_of(self, request: Request, principal: Principal) -> dict[str, str]:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not csrf_ok(self.secret, principal, fields.get("csrf", "")):
            raise PageError(403, "Form expired", "The form's security token is not valid. "
                            "Reload the page and try again.")  # fmt: skip
        return fields

    def render(self, request: Request, name: str, principal: Principal, status: int = 200,
               **ctx: Any) -> HTMLResponse:  # fmt: skip
        ctx.update(user=principal, csrf=csrf_token(self.secret, principal),
                   htmx=self.htmx_file.is_file())  # fmt: skip
        return self.templates.TemplateResponse(request, name, ctx, status_code=status)

    async def audited(self, coro: Any) -> None:
        """A read of patient data is recorded before it is shown; if the audit cannot be
        written, nothing is shown (503), as in the APIs."""
        try:
            await coro
        except AuditUnavailable:
            raise PageError(503, "Not available", "The audit trail cannot be written "
                            "just now, so nothing is shown. Try again.") from None  # fmt: skip

    async def now(self) -> dt.datetime:
        return await queries.business_now(self.pool(), self.wall())

    async def visible_patient(
        self, principal: Principal, patient_id: str, request: Request | None = None
    ) -> dict[str, Any]:
        """The patient, if one of the user's teams has them; otherwise 403 whether or not
        the patient exists (nothing is revealed). With ``request``, the read (or its
        refusal) is audited first."""
        row = await queries.patient(self.pool(), patient_id)
        allowed = row is not None and principal.may_see(row["team"])
        if request is not None:
            await self.audited(self.trail.record(
                audit_actor(principal), "patient.read", "allowed" if allowed else "denied",
                patient_id=patient_id[:64], resource="console.patient",
                source=source_of(request),
            ))  # fmt: skip
        if row is None or not allowed:
            raise PageError(403, "Not your patient",
                            "No patient of your care teams has that id.")  # fmt: skip
        return row

    async def record(self, event: Envelope) -> None:
        """Publish what the clinician did (2xx only once it is in Kafka), then apply it here
        at once so the next page shows it (the projector applies it again, idempotently)."""
        try:
            await publish(self.state["producer"], CARE_TEAM_EVENTS, event, codec=self.codec)
        except Exception as exc:
            log.warning("care-team event not published: %s", type(exc).__name__)
            raise PageError(503, "Not recorded", "Kafka is unreachable; nothing was "
                            "recorded. Try again.") from None  # fmt: skip
        async with self.pool().acquire() as conn, conn.transaction():
            await projection.apply(conn, event)


def install_error_handler(app: FastAPI, console: Console) -> None:
    """A ``PageError`` as a page: 401 sends a browser to sign-in (htmx reloads instead)."""

    @app.exception_handler(PageError)
    async def on_page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        login_path = console.state.get("login_path")
        if exc.status == 401:
            if request.headers.get("HX-Request") == "true":
                # htmx does not follow a redirect to the IdP: reload the page instead, and
                # the page's own request is sent to sign-in.
                return Response(status_code=401, headers={"HX-Refresh": "true"})
            if login_path:
                here = request.url.path if request.method == "GET" else "/"
                if request.method == "GET" and request.url.query:
                    here += "?" + request.url.query
                return RedirectResponse(
                    f"{login_path}?{urlencode({'next': here})}", status_code=303
                )
        signout = csrf_token(console.secret, exc.signed_in) if exc.signed_in else None
        return console.templates.TemplateResponse(
            request, "error.html", {"title": exc.title, "message": exc.message, "user": None,
            "signout_csrf": signout}, status_code=exc.status,
        )  # fmt: skip
