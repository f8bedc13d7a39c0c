"""The console's web app: pages over the read model, actions through the owning services."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from console import chart, projection, projector, queries, views
from console.principal import Authenticate, Principal, csrf_ok, csrf_token, nobody
from console.services import Services
from console.settings import ConsoleSettings
from shared import auth
from shared.audit import AuditTrail, AuditUnavailable
from shared.crypto import EventCodec
from shared.db import create_pool, migrate
from shared.events import (
    Actor,
    AlertAcknowledged,
    AlertAcknowledgedPayload,
    AlertClosed,
    AlertClosedPayload,
    AlertOwned,
    AlertOwnedPayload,
    Envelope,
)
from shared.kafka import create_producer, publish
from shared.topics import CARE_TEAM_EVENTS
from shared.web import BodyLimitMiddleware, install_probes

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
HTMX = ("htmx.org", "2.0.8", "htmx.min.js")  # as pinned in deploy/npm-assets.lock
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


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
    state: dict[str, Any] = {}
    secret = settings.secret_key.get_secret_value().encode()
    assets = Path(settings.assets_dir)
    htmx_file = assets / f"{HTMX[0]}-{HTMX[1]}" / HTMX[2]
    trail = AuditTrail(settings.audit_url(), "console", wall)
    # Logout is a form post answered by a redirect to the IdP's end-session endpoint, and
    # browsers hold redirects after a form to form-action too: the issuer's origin is allowed.
    issuer = urlsplit(settings.oidc_issuer)
    headers = dict(SECURITY_HEADERS)
    headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
        "form-action 'self'", f"form-action 'self' {issuer.scheme}://{issuer.netloc}"
    )

    codec = EventCodec(settings.keyring())  # erasure (helper 2): patient fields sealed

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
            await trail.close()
            await pool.close()

    app = FastAPI(title="HFS recovery — care-team console", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)  # fmt: skip
    app.add_middleware(BodyLimitMiddleware)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(
        kind_label=views.kind_label,
        phase_label=views.phase_label,
        when=views.when,
        outcomes=views.OUTCOMES,
        phases=views.PHASES,
        poll_seconds=settings.poll_seconds,
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for k, v in headers.items():
            response.headers.setdefault(k, v)
        return response

    async def ready() -> dict[str, bool]:
        checks = {"postgres": False, "kafka": False, "projection": False, "assets": False}
        pool = state.get("pool")
        if isinstance(pool, asyncpg.Pool):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.fetchval("SELECT 1"), 2)
                checks["postgres"] = True
        consumer = state.get("consumer")
        checks["kafka"] = not project or (
            isinstance(consumer, AIOKafkaConsumer) and bool(consumer.assignment())
        )
        task = state.get("task")
        checks["projection"] = isinstance(task, asyncio.Task) and not task.done()
        checks["assets"] = htmx_file.is_file()
        return checks

    install_probes(app, ready)

    def pool() -> asyncpg.Pool:
        p = state.get("pool")
        if not isinstance(p, asyncpg.Pool):
            raise PageError(503, "Starting", "The console is starting. Try again in a moment.")
        return p

    def services() -> Services:
        s = state.get("services")
        assert isinstance(s, Services)
        return s

    @app.exception_handler(PageError)
    async def on_page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        if exc.status == 401:
            if request.headers.get("HX-Request") == "true":
                # htmx does not follow a redirect to the IdP: reload the page instead, and
                # the page's own request is sent to sign-in.
                return Response(status_code=401, headers={"HX-Refresh": "true"})
            if state.get("login_path"):
                here = request.url.path if request.method == "GET" else "/"
                if request.method == "GET" and request.url.query:
                    here += "?" + request.url.query
                return RedirectResponse(
                    f"{state['login_path']}?{urlencode({'next': here})}", status_code=303
                )
        return templates.TemplateResponse(
            request, "error.html", {"title": exc.title, "message": exc.message, "user": None,
            "signout_csrf": csrf_token(secret, exc.signed_in) if exc.signed_in else None},
            status_code=exc.status,
        )  # fmt: skip

    async def signed_in(request: Request) -> Principal:
        principal = await authenticate(request)
        if principal is None:
            raise PageError(401, "Sign-in required", "Sign in to use the care-team console.")
        if not principal.is_clinician:
            raise PageError(403, "Not allowed", "The console is for clinicians of a care team.",
                            signed_in=principal)  # fmt: skip
        return principal

    async def form_of(request: Request, principal: Principal) -> dict[str, str]:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not csrf_ok(secret, principal, fields.get("csrf", "")):
            raise PageError(403, "Form expired", "The form's security token is not valid. "
                            "Reload the page and try again.")  # fmt: skip
        return fields

    def render(request: Request, name: str, principal: Principal, status: int = 200,
               **ctx: Any) -> HTMLResponse:  # fmt: skip
        ctx.update(user=principal, csrf=csrf_token(secret, principal), htmx=htmx_file.is_file())
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    def audit_actor(principal: Principal) -> auth.Principal:
        """The signed-in user as the audit trail records APIs' callers (no token)."""
        return auth.Principal(sub=principal.sub, name=principal.name, client="hfs-console",
                              roles=principal.roles, scopes=frozenset(),
                              teams=frozenset(principal.teams))  # fmt: skip

    def source_of(request: Request) -> str | None:
        return request.client.host if request.client else None

    async def audited(coro: Any) -> None:
        """A read of patient data is recorded before it is shown; if the audit cannot be
        written, nothing is shown (503), as in the APIs."""
        try:
            await coro
        except AuditUnavailable:
            raise PageError(503, "Not available", "The audit trail cannot be written "
                            "just now, so nothing is shown. Try again.") from None  # fmt: skip

    async def now() -> dt.datetime:
        return await queries.business_now(pool(), wall())

    async def worklist_context(principal: Principal, offset: int) -> dict[str, Any]:
        page = await queries.worklist(pool(), list(principal.teams), settings.page_size, offset)
        pages = await services().page_statuses(principal.token, (a["alert_id"] for a in page.rows))
        evidence = await queries.reports_by_id(
            pool(), sorted({e for a in page.rows for e in a["evidence"]})
        )
        current = await now()
        for a in page.rows:
            a["page"] = views.page_status(a, pages.get(str(a["alert_id"])))
            a["open_for"] = views.since(a["raised_at"], current)
            a["evidence_reports"] = [_evidence(evidence[e]) for e in a["evidence"] if e in evidence]
        return {"alerts": page.rows, "total": page.total, "next_offset": page.next_cursor,
                "offset": offset}  # fmt: skip

    # --- pages ---------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def worklist(request: Request, offset: int = 0) -> HTMLResponse:
        principal = await signed_in(request)
        ctx = await worklist_context(principal, max(0, offset))
        return render(request, "worklist.html", principal, **ctx)

    @app.get("/worklist/rows", response_class=HTMLResponse)
    async def worklist_rows(request: Request, offset: int = 0) -> HTMLResponse:
        principal = await signed_in(request)
        ctx = await worklist_context(principal, max(0, offset))
        return render(request, "_worklist_rows.html", principal, **ctx)

    @app.get("/patients", response_class=HTMLResponse)
    async def patient_list(
        request: Request, q: str = "", phase: str = "", team: str = "", open: str = "",
        after: str = "",
    ) -> HTMLResponse:  # fmt: skip
        principal = await signed_in(request)
        teams = [team] if team in principal.teams else list(principal.teams)
        page = await queries.patients(
            pool(), teams, query=q.strip()[:64], phase=phase if phase in views.PHASES else "",
            open_only=bool(open), after=after[:64], limit=settings.page_size,
        )  # fmt: skip
        # Who saw which patients (one row each; the search words are not recorded: a name
        # typed into the search box is patient data).
        actor_ = audit_actor(principal)
        await audited(asyncio.gather(*(
            trail.record(actor_, "patient.list", "allowed", patient_id=p["patient_id"],
                         resource="console.patients", source=source_of(request))
            for p in page.rows
        )))  # fmt: skip
        filters = {"q": q, "phase": phase, "team": team, "open": open}
        return render(request, "patients.html", principal, page=page, filters=filters)

    async def visible_patient(
        principal: Principal, patient_id: str, request: Request | None = None
    ) -> dict[str, Any]:
        """The patient, if one of the user's teams has them; otherwise 403 whether or not
        the patient exists (nothing is revealed). With ``request``, the read (or its
        refusal) is audited first."""
        row = await queries.patient(pool(), patient_id)
        allowed = row is not None and principal.may_see(row["team"])
        if request is not None:
            await audited(trail.record(
                audit_actor(principal), "patient.read", "allowed" if allowed else "denied",
                patient_id=patient_id[:64], resource="console.patient",
                source=source_of(request),
            ))  # fmt: skip
        if row is None or not allowed:
            raise PageError(403, "Not your patient",
                            "No patient of your care teams has that id.")  # fmt: skip
        return row

    @app.get("/patients/{patient_id}", response_class=HTMLResponse)
    async def patient_page(request: Request, patient_id: str) -> HTMLResponse:
        principal = await signed_in(request)
        patient = await visible_patient(principal, patient_id, request)
        recovery, sent = await asyncio.gather(
            services().recovery(principal.token, patient_id),
            services().notifications(principal.token, patient_id),
        )
        alerts = await queries.alerts_of(pool(), patient_id)
        pages = await services().page_statuses(principal.token, (a["alert_id"] for a in alerts))
        current = await now()
        for a in alerts:
            a["page"] = views.page_status(a, pages.get(str(a["alert_id"])))
            a["open_for"] = views.since(a["raised_at"], current)
        doc = recovery.body if recovery.ok else {}
        reports = doc.get("reports") or []
        pts = chart.points(reports, [*doc.get("alerts", []), *alerts])
        chart_svg = chart.svg(pts, patient["baseline_severity"], doc.get("day"))
        conversation = _conversation(
            await queries.texts_of(pool(), patient_id),
            sent.body.get("notifications", []) if sent.ok else [],
        )
        return render(
            request, "patient.html", principal, patient=patient, recovery=doc,
            recovery_error=None if recovery.ok else recovery.message, points=pts,
            chart_svg=chart_svg, alerts=alerts, conversation=conversation,
            conversation_error=None if sent.ok else sent.message,
            day=doc.get("day") if recovery.ok
            else views.day_of(patient["surgery_date"], patient["timezone"], current),
        )  # fmt: skip

    # --- alert actions -------------------------------------------------------------------

    async def act_on(request: Request, alert_id: uuid.UUID) -> tuple[
        Principal, dict[str, Any], dict[str, str]
    ]:  # fmt: skip
        principal = await signed_in(request)
        fields = await form_of(request, principal)
        alert = await queries.alert(pool(), alert_id)
        if alert is None or not principal.may_see(alert["team"]):
            raise PageError(403, "Not your alert", "No alert of your care teams has that id.")
        return principal, alert, fields

    async def record(event: Envelope) -> None:
        """Publish what the clinician did (2xx only once it is in Kafka), then apply it here
        at once so the next page shows it (the projector applies it again, idempotently)."""
        try:
            await publish(state["producer"], CARE_TEAM_EVENTS, event, codec=codec)
        except Exception as exc:
            log.warning("care-team event not published: %s", type(exc).__name__)
            raise PageError(503, "Not recorded", "Kafka is unreachable; nothing was "
                            "recorded. Try again.") from None  # fmt: skip
        async with pool().acquire() as conn, conn.transaction():
            await projection.apply(conn, event)

    def back(fields: dict[str, str], alert: dict[str, Any]) -> RedirectResponse:
        target = local_path(fields.get("next"), f"/patients/{alert['patient_id']}")
        return RedirectResponse(target, status_code=303)

    def actor(principal: Principal) -> Actor:
        return Actor(sub=principal.sub, name=principal.name)

    def envelope(alert: dict[str, Any]) -> dict[str, Any]:
        at = wall()
        return {"event_id": uuid.uuid4(), "occurred_at": at, "recorded_at": at,
                "patient_id": alert["patient_id"], "source": "console"}  # fmt: skip

    @app.post("/alerts/{alert_id}/ack")
    async def acknowledge(request: Request, alert_id: uuid.UUID) -> Response:
        principal, alert, fields = await act_on(request, alert_id)
        answer = await services().acknowledge(principal.token, alert_id)
        if not answer.ok:
            raise PageError(answer.status if answer.status in (403, 404, 409) else 503,
                            "Not acknowledged", answer.message)  # fmt: skip
        await record(AlertAcknowledged(
            **envelope(alert), payload=AlertAcknowledgedPayload(alert_id=alert_id,
                                                                by=actor(principal))))  # fmt: skip
        return back(fields, alert)

    @app.post("/alerts/{alert_id}/own")
    async def take_ownership(request: Request, alert_id: uuid.UUID) -> Response:
        principal, alert, fields = await act_on(request, alert_id)
        await record(AlertOwned(**envelope(alert), payload=AlertOwnedPayload(
            alert_id=alert_id, owner=actor(principal))))  # fmt: skip
        return back(fields, alert)

    @app.post("/alerts/{alert_id}/close")
    async def close(request: Request, alert_id: uuid.UUID) -> Response:
        principal, alert, fields = await act_on(request, alert_id)
        try:
            payload = AlertClosedPayload(alert_id=alert_id, outcome=fields.get("outcome", ""),
                                         note=fields.get("note", "").strip(),
                                         by=actor(principal))  # fmt: skip
        except ValidationError:
            raise PageError(422, "Not closed", "Choose an outcome (and keep the note under "
                            "2,000 characters).") from None  # fmt: skip
        if alert["closed_at"] is None:
            await record(AlertClosed(**envelope(alert), payload=payload))
        return back(fields, alert)

    # --- enrollment and consent ----------------------------------------------------------

    @app.get("/enroll", response_class=HTMLResponse)
    async def enroll_form(request: Request) -> HTMLResponse:
        principal = await signed_in(request)
        return render(request, "enroll.html", principal, values={}, errors={}, editing=False)

    @app.get("/patients/{patient_id}/edit", response_class=HTMLResponse)
    async def edit_form(request: Request, patient_id: str) -> HTMLResponse:
        principal = await signed_in(request)
        patient = await visible_patient(principal, patient_id, request)
        values = _flatten(patient["enrollment"]) | {"patient_id": patient_id}
        return render(request, "enroll.html", principal, values=values, errors={}, editing=True)

    @app.post("/enroll", response_class=HTMLResponse)
    async def enroll(request: Request) -> Response:
        principal = await signed_in(request)
        fields = await form_of(request, principal)
        editing = fields.get("editing") == "1"
        pid = fields.get("patient_id", "").strip()
        if editing:
            await visible_patient(principal, pid)
        answer = await services().enroll(principal.token, _enrollment_body(fields))
        if answer.ok:
            return RedirectResponse(f"/patients/{pid}?enrolled=1", status_code=303)
        errors = answer.field_errors()
        return render(request, "enroll.html", principal, status=answer.status if answer.status
                      in (400, 403, 404, 409, 422) else 503, values=fields, errors=errors,
                      editing=editing, message=answer.message)  # fmt: skip

    @app.post("/patients/{patient_id}/consent")
    async def consent(request: Request, patient_id: str) -> Response:
        principal = await signed_in(request)
        fields = await form_of(request, principal)
        await visible_patient(principal, patient_id)
        choice = fields.get("consent")
        if choice not in ("stop", "start"):
            raise PageError(422, "Not recorded", "Choose stop or start.")
        answer = await services().consent(principal.token, patient_id, choice == "start")
        if not answer.ok:
            raise PageError(answer.status if answer.status in (403, 404, 422) else 503,
                            "Not recorded", answer.message)  # fmt: skip
        return RedirectResponse(f"/patients/{patient_id}?consent={choice}", status_code=303)

    @app.get("/signed-out", response_class=HTMLResponse)
    async def signed_out(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "signed_out.html", {"user": None})

    @app.get("/assets/htmx.min.js")
    async def htmx() -> Response:
        if not htmx_file.is_file():
            return Response(status_code=404)
        return FileResponse(htmx_file, media_type="text/javascript")

    if extra_routes is not None:
        extra_routes(app)
    state["login_path"] = getattr(app.state, "login_path", None)
    return app


async def _idle() -> None:
    await asyncio.Event().wait()


def _evidence(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "day": views.day_of(report["surgery_date"], report["timezone"], report["at"]),
        "severity": report["severity"],
        "note": report["note"],
    }


def _conversation(
    texts: list[dict[str, Any]], notifications: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The patient's texts and ours, oldest first, each with its delivery status."""
    items: list[dict[str, Any]] = []
    for t in texts:
        if t["kind"] == "report":
            parts = [] if t["severity"] is None else [str(t["severity"])]
            if t["note"]:
                # A texted note is the whole text, grade included: shown as it was sent.
                parts = [t["note"]] if t["note"].startswith(tuple(parts)) else [*parts, t["note"]]
            body = " ".join(parts)
        else:
            body = t["kind"].upper()
        items.append({"at": t["at"], "direction": "in", "body": body, "status": "received",
                      "kind": t["kind"]})  # fmt: skip
    for n in notifications:
        if n.get("audience") != "patient":
            continue
        at = n.get("sent_at") or n.get("created_at")
        items.append({"at": dt.datetime.fromisoformat(at) if at else None, "direction": "out",
                      "body": n.get("body") or "", "status": n.get("status"),
                      "kind": n.get("kind")})  # fmt: skip
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return sorted(items, key=lambda i: i["at"] or epoch)


def _flatten(enrollment: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in enrollment.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": "" if vv is None else str(vv) for kk, vv in v.items()})
        elif isinstance(v, bool):
            out[k] = "on" if v else ""
        else:
            out[k] = "" if v is None else str(v)
    return out


def _enrollment_body(fields: dict[str, str]) -> dict[str, Any]:
    """The form as ingest's JSON: numbers and booleans typed, empty optional fields left
    out; anything else is sent as typed, for ingest to judge (its errors come back)."""

    def get(key: str) -> str:
        return fields.get(key, "").strip()

    baseline = get("baseline_severity")
    care_team: dict[str, Any] = {"on_call": get("care_team.on_call")}
    for optional in ("backup", "timezone", "team"):
        if get(f"care_team.{optional}"):
            care_team[optional] = get(f"care_team.{optional}")
    body: dict[str, Any] = {
        "patient_id": get("patient_id"),
        "phone": get("phone"),
        "timezone": get("timezone"),
        "language": get("language"),
        "surgery_date": get("surgery_date"),
        "baseline_severity": int(baseline) if baseline.isdigit() else baseline,
        "care_team": care_team,
        "sms_consent": fields.get("sms_consent") == "on",
    }
    if get("name"):
        body["name"] = get("name")
    return body
