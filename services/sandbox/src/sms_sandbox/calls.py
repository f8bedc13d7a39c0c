"""Twilio's Calls resource in the sandbox: outbound voice calls with inline TwiML, their
status callbacks (initiated, ringing, in-progress, completed), and a simulated keypress
(``POST /sandbox/calls/{sid}/press``) that posts the ``<Gather>`` result, signed, to the
TwiML's ``action`` URL as Twilio would when the callee presses a key."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from sms_sandbox.store import utcnow
from sms_sandbox.twilio_wire import (
    API_VERSION,
    MAGIC_TO,
    TwilioApiError,
    is_e164,
    iso8601,
    new_sid,
    read_form,
    redact_url,
    rfc2822,
    sign,
)

if TYPE_CHECKING:
    from sms_sandbox.sandbox import Sandbox

log = logging.getLogger(__name__)

#: How a call goes when nobody presses anything: Twilio's statuses, in order.
LIFECYCLE = ("initiated", "ringing", "in-progress")


@dataclass(frozen=True)
class StoredCall:
    sid: str
    account_sid: str
    to: str
    from_: str
    twiml: str
    status: str
    status_callback: str | None = None
    digits: str | None = None
    date_created: dt.datetime = field(default_factory=utcnow)

    @property
    def spoken(self) -> str:
        """What the call says (every ``<Say>``), for the page and the listing."""
        return " ".join(text for text, _ in _says(self.twiml))

    @property
    def gather_action(self) -> str | None:
        root = _parse(self.twiml)
        gather = root.find(".//Gather") if root is not None else None
        return gather.get("action") if gather is not None else None


def _parse(twiml: str) -> ET.Element | None:
    try:
        # TwiML the notifier wrote; expat refuses entity bombs, nothing external is resolved.
        root = ET.fromstring(twiml)  # noqa: S314
    except ET.ParseError:
        return None
    return root if root.tag == "Response" else None


def _says(twiml: str) -> list[tuple[str, str]]:
    root = _parse(twiml)
    if root is None:
        return []
    return [((el.text or "").strip(), el.get("voice", "")) for el in root.iter("Say")]


class CallStore:
    """Calls in creation order; one lock, like the message store."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._calls: dict[str, StoredCall] = {}

    async def add(self, call: StoredCall) -> None:
        async with self._lock:
            self._calls[call.sid] = call

    async def get(self, sid: str) -> StoredCall | None:
        async with self._lock:
            return self._calls.get(sid)

    async def update(self, sid: str, **changes: Any) -> StoredCall | None:
        async with self._lock:
            current = self._calls.get(sid)
            if current is None:
                return None
            self._calls[sid] = replace(current, **changes)
            return self._calls[sid]

    async def list(self, to: str | None = None) -> list[StoredCall]:
        async with self._lock:
            return [c for c in self._calls.values() if to is None or c.to == to]

    async def clear(self) -> int:
        async with self._lock:
            n = len(self._calls)
            self._calls.clear()
            return n


def call_json(call: StoredCall) -> dict[str, Any]:
    """A call resource as Twilio's API returns it (the fields the SDK reads)."""
    return {
        "sid": call.sid,
        "account_sid": call.account_sid,
        "to": call.to,
        "from": call.from_,
        "status": call.status,
        "direction": "outbound-api",
        "api_version": API_VERSION,
        "date_created": rfc2822(call.date_created),
        "date_updated": rfc2822(call.date_created),
        "uri": f"/{API_VERSION}/Accounts/{call.account_sid}/Calls/{call.sid}.json",
    }


def sandbox_call_view(call: StoredCall) -> dict[str, Any]:
    return {
        "sid": call.sid,
        "to": call.to,
        "from": call.from_,
        "status": call.status,
        "said": call.spoken,
        "digits": call.digits,
        "date_created": iso8601(call.date_created),
    }


def callback_form(call: StoredCall, **extra: str) -> dict[str, str]:
    return {
        "CallSid": call.sid,
        "AccountSid": call.account_sid,
        "From": call.from_,
        "To": call.to,
        "CallStatus": call.status,
        "Direction": "outbound-api",
        "ApiVersion": API_VERSION,
        **extra,
    }


def validate_call(form: dict[str, str], default_from: str) -> tuple[str, str, str, str | None]:
    """(to, from, twiml, status callback) of a create request, or Twilio's error."""
    to = form.get("To", "").strip()
    if not to:
        raise TwilioApiError(21201, "No 'To' number is specified")
    if not is_e164(to) or MAGIC_TO.get(to) == 21211:  # Twilio's magic invalid number too
        raise TwilioApiError(21211)
    twiml = form.get("Twiml", "")
    if not twiml.strip():
        raise TwilioApiError(21205, "Url or Twiml is required (the sandbox runs inline TwiML)")
    if _parse(twiml) is None:
        raise TwilioApiError(12100, "Document parse failure")
    return to, form.get("From", "").strip() or default_from, twiml, form.get("StatusCallback")


class PressRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    digits: str = Field(pattern=r"^[0-9*#]{1,10}$")


def calls_router(sandbox: Sandbox) -> APIRouter:
    router = APIRouter()
    prefix = f"/{API_VERSION}/Accounts"

    async def post_signed(url: str, form: dict[str, str]) -> httpx.Response | None:
        headers = {
            "X-Twilio-Signature": sign(sandbox.auth_token, url, form),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        }
        try:
            return await sandbox.webhooks.http().post(url, data=form, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("call webhook to %s failed: %s", redact_url(url), type(exc).__name__)
            return None

    async def lifecycle(sid: str) -> None:
        delay = sandbox.settings.callback_delay_ms / 1000
        for status in LIFECYCLE:
            await asyncio.sleep(delay)
            call = await sandbox.calls.get(sid)
            if call is None or call.status in ("completed", "no-answer"):
                return
            call = await sandbox.calls.update(sid, status=status)
            if call is not None and call.status_callback:
                await post_signed(call.status_callback, callback_form(call))

    @router.post(prefix + "/{account_sid}/Calls.json", status_code=201)
    async def create_call(account_sid: str, request: Request) -> Response:
        form, faulted = await sandbox.admit(request, account_sid)
        if faulted is not None:
            return faulted
        to, from_, twiml, callback = validate_call(form, sandbox.settings.from_number)
        call = StoredCall(
            sid=new_sid("CA"),
            account_sid=account_sid,
            to=to,
            from_=from_,
            twiml=twiml,
            status="queued",
            status_callback=callback,
        )
        await sandbox.calls.add(call)
        sandbox.calls_total.labels(outcome="accepted").inc()
        log.info("call %s queued", call.sid)
        sandbox.spawn(lifecycle(call.sid))
        return JSONResponse(call_json(call), status_code=201)

    @router.get(prefix + "/{account_sid}/Calls/{sid}.json")
    async def fetch_call(account_sid: str, sid: str, request: Request) -> Response:
        sandbox.check_auth(request, account_sid)
        call = await sandbox.calls.get(sid)
        if call is None or call.account_sid != account_sid:
            raise TwilioApiError(20404, f"The requested resource {request.url.path} was not found")
        return JSONResponse(call_json(call))

    @router.get("/sandbox/calls")
    async def list_calls(to: str | None = None) -> dict[str, list[dict[str, Any]]]:
        return {"calls": [sandbox_call_view(c) for c in await sandbox.calls.list(to)]}

    @router.delete("/sandbox/calls")
    async def clear_calls() -> dict[str, int]:
        return {"deleted": await sandbox.calls.clear()}

    @router.post("/sandbox/calls/{sid}/press")
    async def press(sid: str, request: Request) -> Response:
        """The callee presses ``digits`` (JSON ``{"digits": "1"}``, or the page's form): the
        ``<Gather>`` result goes, signed, to its ``action`` URL; the call then completes
        (with its status callback)."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        from_page = content_type == "application/x-www-form-urlencoded"
        raw: Any = await read_form(request) if from_page else await request.body()
        try:
            body = (
                PressRequest.model_validate(raw)
                if from_page
                else PressRequest.model_validate_json(raw)
            )
        except ValidationError:
            return JSONResponse({"detail": "'digits' must be 1-10 of 0-9, * and #."}, 422)
        call = await sandbox.calls.get(sid)
        if call is None:
            return JSONResponse({"detail": "No call has that sid."}, 404)
        if call.status in ("completed", "no-answer", "failed", "busy", "canceled"):
            return JSONResponse({"detail": f"The call is {call.status}."}, 409)
        action = call.gather_action
        if action is None:
            return JSONResponse({"detail": "The call's TwiML gathers no keypress."}, 409)
        call = await sandbox.calls.update(sid, status="in-progress", digits=body.digits)
        assert call is not None
        response = await post_signed(action, callback_form(call, Digits=body.digits))
        done = await sandbox.calls.update(sid, status="completed")
        if done is not None and done.status_callback:
            await post_signed(done.status_callback, callback_form(done, CallDuration="12"))
        if from_page:
            return RedirectResponse("/#" + quote(call.to), status_code=303)
        if response is None:
            return JSONResponse({"status": None, "twiml": None, "error": "unreachable"}, 502)
        return JSONResponse({"status": response.status_code, "twiml": response.text})

    return router
