"""The console's read pages: the worklist, the patient list and one patient's page."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from console import chart, queries, views
from console.principal import Principal
from console.web import Console, audit_actor, source_of
from shared.phases import PHASES


def install_pages(app: FastAPI, console: Console) -> None:
    """Register the read pages on ``app``."""
    settings = console.settings

    async def worklist_context(principal: Principal, offset: int) -> dict[str, Any]:
        pool, services = console.pool(), console.services()
        page = await queries.worklist(pool, list(principal.teams), settings.page_size, offset)
        pages = await services.page_statuses(principal.token, (a["alert_id"] for a in page.rows))
        evidence = await queries.reports_by_id(
            pool, sorted({e for a in page.rows for e in a["evidence"]})
        )
        current = await console.now()
        for a in page.rows:
            a["page"] = views.page_status(a, pages.get(str(a["alert_id"])))
            a["open_for"] = views.since(a["raised_at"], current)
            a["evidence_reports"] = [_evidence(evidence[e]) for e in a["evidence"] if e in evidence]
        return {"alerts": page.rows, "total": page.total, "next_offset": page.next_cursor,
                "offset": offset}  # fmt: skip

    @app.get("/", response_class=HTMLResponse)
    async def worklist(request: Request, offset: int = 0) -> HTMLResponse:
        principal = await console.signed_in(request)
        ctx = await worklist_context(principal, max(0, offset))
        return console.render(request, "worklist.html", principal, **ctx)

    @app.get("/worklist/rows", response_class=HTMLResponse)
    async def worklist_rows(request: Request, offset: int = 0) -> HTMLResponse:
        principal = await console.signed_in(request)
        ctx = await worklist_context(principal, max(0, offset))
        return console.render(request, "_worklist_rows.html", principal, **ctx)

    @app.get("/patients", response_class=HTMLResponse)
    async def patient_list(
        request: Request, q: str = "", phase: str = "", team: str = "", open: str = "",
        after: str = "",
    ) -> HTMLResponse:  # fmt: skip
        principal = await console.signed_in(request)
        teams = [team] if team in principal.teams else list(principal.teams)
        page = await queries.patients(
            console.pool(), teams, query=q.strip()[:64],
            phase=phase if phase in PHASES else "",
            open_only=bool(open), after=after[:64], limit=settings.page_size,
        )  # fmt: skip
        # Who saw which patients (one row each; the search words are not recorded: a name
        # typed into the search box is patient data).
        actor_ = audit_actor(principal)
        await console.audited(asyncio.gather(*(
            console.trail.record(actor_, "patient.list", "allowed", patient_id=p["patient_id"],
                                 resource="console.patients", source=source_of(request))
            for p in page.rows
        )))  # fmt: skip
        filters = {"q": q, "phase": phase, "team": team, "open": open}
        return console.render(request, "patients.html", principal, page=page, filters=filters)

    @app.get("/patients/{patient_id}", response_class=HTMLResponse)
    async def patient_page(request: Request, patient_id: str) -> HTMLResponse:
        principal = await console.signed_in(request)
        patient = await console.visible_patient(principal, patient_id, request)
        services, pool = console.services(), console.pool()
        recovery, sent = await asyncio.gather(
            services.recovery(principal.token, patient_id),
            services.notifications(principal.token, patient_id),
        )
        alerts = await queries.alerts_of(pool, patient_id)
        pages = await services.page_statuses(principal.token, (a["alert_id"] for a in alerts))
        current = await console.now()
        for a in alerts:
            a["page"] = views.page_status(a, pages.get(str(a["alert_id"])))
            a["open_for"] = views.since(a["raised_at"], current)
        doc = recovery.body if recovery.ok else {}
        reports = doc.get("reports") or []
        pts = chart.points(reports, [*doc.get("alerts", []), *alerts])
        chart_svg = chart.svg(pts, patient["baseline_severity"], doc.get("day"))
        texts = conversation(
            await queries.texts_of(pool, patient_id),
            sent.body.get("notifications", []) if sent.ok else [],
        )
        return console.render(
            request, "patient.html", principal, patient=patient, recovery=doc,
            recovery_error=None if recovery.ok else recovery.message, points=pts,
            chart_svg=chart_svg, alerts=alerts, conversation=texts,
            conversation_error=None if sent.ok else sent.message,
            day=doc.get("day") if recovery.ok
            else views.day_of(patient["surgery_date"], patient["timezone"], current),
        )  # fmt: skip


def _evidence(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "day": views.day_of(report["surgery_date"], report["timezone"], report["at"]),
        "severity": report["severity"],
        "note": report["note"],
    }


def conversation(
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
