"""The sandbox's own controls (no Twilio equivalent): messages, simulated texts, faults, page."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from sms_sandbox.page import render_page
from sms_sandbox.sandbox import Sandbox
from sms_sandbox.twilio_wire import is_e164, read_form, sandbox_view

log = logging.getLogger(__name__)


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["none", "429", "500", "slow", "drop"]
    count: int | None = Field(default=None, ge=0)
    delay_ms: int = Field(default=0, ge=0, le=600_000)


def controls_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter()
    settings = sandbox.settings

    @router.get("/sandbox/messages")
    async def sandbox_messages(to: str | None = None) -> dict[str, list[dict[str, Any]]]:
        found = await sandbox.store.list(to=to)
        return {"messages": [sandbox_view(m) for m in found]}

    @router.delete("/sandbox/messages")
    async def clear_messages() -> dict[str, int]:
        cleared = await sandbox.store.clear()
        log.info("store cleared (%d messages)", cleared)
        return {"deleted": cleared}

    @router.post("/sandbox/inbound")
    async def sandbox_inbound(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        from_html_form = content_type == "application/x-www-form-urlencoded"
        data: dict[str, Any]
        if from_html_form:
            data = dict(await read_form(request))
        else:
            try:
                parsed = json.loads(await request.body())
            except ValueError:
                return JSONResponse({"detail": "The body must be a JSON object."}, 400)
            if not isinstance(parsed, dict):
                return JSONResponse({"detail": "The body must be a JSON object."}, 400)
            data = parsed
        from_ = data.get("from")
        to = data.get("to") or settings.from_number
        body = data.get("body")
        if not isinstance(from_, str) or not is_e164(from_.strip()):
            return JSONResponse({"detail": "'from' must be an E.164 phone number."}, 422)
        if not isinstance(to, str) or not is_e164(to.strip()):
            return JSONResponse({"detail": "'to' must be an E.164 phone number."}, 422)
        if not isinstance(body, str):
            return JSONResponse({"detail": "'body' must be a string."}, 422)
        result = await sandbox.webhooks.inbound(from_.strip(), to.strip(), body)
        if from_html_form:
            return RedirectResponse("/#" + quote(from_.strip()), status_code=303)
        payload: dict[str, Any] = {
            "status": result.status,
            "twiml": result.twiml,
            "message_sid": result.message.sid,
            "reply_sids": [r.sid for r in result.replies],
        }
        if result.status is None:
            payload["error"] = "ingest unreachable"
            return JSONResponse(payload, status_code=502)
        return JSONResponse(payload)

    @router.get("/sandbox/faults")
    async def get_faults() -> dict[str, object]:
        return (await sandbox.faults.current()).as_json()

    @router.post("/sandbox/faults")
    async def set_faults(fault: FaultRequest) -> dict[str, object]:
        state = await sandbox.faults.set(fault.mode, fault.count, fault.delay_ms)
        log.info("fault injection set to %s (count %s)", state.mode, state.remaining)
        return state.as_json()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        messages = await sandbox.store.list()
        calls = await sandbox.calls.list()
        return HTMLResponse(render_page(messages, settings.from_number, calls))

    return router
