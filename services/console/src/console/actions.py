"""The console's actions: on alerts (acknowledge, own, close), enrollment and consent."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from console import queries
from console.principal import Principal
from console.web import Console, PageError, local_path
from shared.events import (
    Actor,
    AlertAcknowledged,
    AlertAcknowledgedPayload,
    AlertClosed,
    AlertClosedPayload,
    AlertOwned,
    AlertOwnedPayload,
)


def install_alert_actions(app: FastAPI, console: Console) -> None:
    """Register the alert actions: each published to Kafka, then applied to the read model."""

    async def act_on(request: Request, alert_id: uuid.UUID) -> tuple[
        Principal, dict[str, Any], dict[str, str]
    ]:  # fmt: skip
        principal = await console.signed_in(request)
        fields = await console.form_of(request, principal)
        alert = await queries.alert(console.pool(), alert_id)
        if alert is None or not principal.may_see(alert["team"]):
            raise PageError(403, "Not your alert", "No alert of your care teams has that id.")
        return principal, alert, fields

    def back(fields: dict[str, str], alert: dict[str, Any]) -> RedirectResponse:
        target = local_path(fields.get("next"), f"/patients/{alert['patient_id']}")
        return RedirectResponse(target, status_code=303)

    def actor(principal: Principal) -> Actor:
        return Actor(sub=principal.sub, name=principal.name)

    def envelope(alert: dict[str, Any]) -> dict[str, Any]:
        at = console.wall()
        return {"event_id": uuid.uuid4(), "occurred_at": at, "recorded_at": at,
                "patient_id": alert["patient_id"], "source": "console"}  # fmt: skip

    @app.post("/alerts/{alert_id}/ack")
    async def acknowledge(request: Request, alert_id: uuid.UUID) -> Response:
        principal, alert, fields = await act_on(request, alert_id)
        answer = await console.services().acknowledge(principal.token, alert_id)
        if not answer.ok:
            raise PageError(answer.status if answer.status in (403, 404, 409) else 503,
                            "Not acknowledged", answer.message)  # fmt: skip
        await console.record(AlertAcknowledged(
            **envelope(alert), payload=AlertAcknowledgedPayload(alert_id=alert_id,
                                                                by=actor(principal))))  # fmt: skip
        return back(fields, alert)

    @app.post("/alerts/{alert_id}/own")
    async def take_ownership(request: Request, alert_id: uuid.UUID) -> Response:
        principal, alert, fields = await act_on(request, alert_id)
        await console.record(AlertOwned(**envelope(alert), payload=AlertOwnedPayload(
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
            await console.record(AlertClosed(**envelope(alert), payload=payload))
        return back(fields, alert)


def install_enrollment(app: FastAPI, console: Console) -> None:
    """Register enrollment (new or edited, through ingest) and the consent switch."""

    @app.get("/enroll", response_class=HTMLResponse)
    async def enroll_form(request: Request) -> HTMLResponse:
        principal = await console.signed_in(request)
        return console.render(request, "enroll.html", principal, values={}, errors={},
                              editing=False)  # fmt: skip

    @app.get("/patients/{patient_id}/edit", response_class=HTMLResponse)
    async def edit_form(request: Request, patient_id: str) -> HTMLResponse:
        principal = await console.signed_in(request)
        patient = await console.visible_patient(principal, patient_id, request)
        values = _flatten(patient["enrollment"]) | {"patient_id": patient_id}
        return console.render(request, "enroll.html", principal, values=values, errors={},
                              editing=True)  # fmt: skip

    @app.post("/enroll", response_class=HTMLResponse)
    async def enroll(request: Request) -> Response:
        principal = await console.signed_in(request)
        fields = await console.form_of(request, principal)
        editing = fields.get("editing") == "1"
        pid = fields.get("patient_id", "").strip()
        if editing:
            await console.visible_patient(principal, pid)
        answer = await console.services().enroll(principal.token, enrollment_body(fields))
        if answer.ok:
            return RedirectResponse(f"/patients/{pid}?enrolled=1", status_code=303)
        errors = answer.field_errors()
        return console.render(request, "enroll.html", principal, status=answer.status
                              if answer.status in (400, 403, 404, 409, 422) else 503,
                              values=fields, errors=errors, editing=editing,
                              message=answer.message)  # fmt: skip

    @app.post("/patients/{patient_id}/consent")
    async def consent(request: Request, patient_id: str) -> Response:
        principal = await console.signed_in(request)
        fields = await console.form_of(request, principal)
        await console.visible_patient(principal, patient_id)
        choice = fields.get("consent")
        if choice not in ("stop", "start"):
            raise PageError(422, "Not recorded", "Choose stop or start.")
        answer = await console.services().consent(principal.token, patient_id, choice == "start")
        if not answer.ok:
            raise PageError(answer.status if answer.status in (403, 404, 422) else 503,
                            "Not recorded", answer.message)  # fmt: skip
        return RedirectResponse(f"/patients/{patient_id}?consent={choice}", status_code=303)


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


def enrollment_body(fields: dict[str, str]) -> dict[str, Any]:
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
