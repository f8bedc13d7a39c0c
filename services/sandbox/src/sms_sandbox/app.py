"""The SMS sandbox: a local stand-in for Twilio's Messages API, its status callbacks and
its inbound-message webhooks."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sms_sandbox.calls import CallStore, calls_router
from sms_sandbox.page import render_page
from sms_sandbox.settings import SandboxSettings
from sms_sandbox.store import Faults, FaultState, MessageStore, StoredMessage
from sms_sandbox.twilio_wire import (
    API_VERSION,
    TwilioApiError,
    error_json,
    filter_date_sent,
    inbound_webhook_form,
    is_e164,
    message_json,
    message_page_json,
    new_sid,
    num_segments,
    read_form,
    redact_url,
    sandbox_view,
    sign,
    status_callback_form,
    validate_create,
)

log = logging.getLogger(__name__)

API_PREFIX = f"/{API_VERSION}/Accounts"


def twiml_replies(twiml: str) -> list[tuple[str | None, str]]:
    """``(to, body)`` of every ``<Message>`` verb in a TwiML document (empty if not TwiML)."""
    try:
        # Our own ingest service's reply; the stdlib parser (expat >= 2.4.1) refuses
        # entity-expansion bombs, and nothing here resolves external entities.
        root = ET.fromstring(twiml)  # noqa: S314
    except ET.ParseError:
        return []
    if root.tag != "Response":
        return []
    replies: list[tuple[str | None, str]] = []
    for verb in root.iter("Message"):
        body_el = verb.find("Body")
        text = body_el.text if body_el is not None else verb.text
        if text and text.strip():
            replies.append((verb.get("to"), text.strip()))
    return replies


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["none", "429", "500", "slow", "drop"]
    count: int | None = Field(default=None, ge=0)
    delay_ms: int = Field(default=0, ge=0, le=600_000)


class _DroppedResponse(Response):
    """Start a response and abandon it: uvicorn closes the connection mid-response, which
    the client sees as a broken connection (the nearest ASGI gets to a silent drop)."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"4096"),
                ],
            }
        )


@dataclass
class InboundResult:
    message: StoredMessage
    status: int | None
    twiml: str | None
    replies: list[StoredMessage]


class Sandbox:
    """All the sandbox's state: one instance per app."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.store = MessageStore()
        self.calls = CallStore()
        self.faults = Faults()
        self.registry = CollectorRegistry()
        self.messages_total = Counter(
            "sandbox_messages_total",
            "Messages.json create requests, by outcome and Twilio error code.",
            ["outcome", "code"],
            registry=self.registry,
        )
        self.callbacks_total = Counter(
            "sandbox_status_callbacks_total",
            "Status callbacks, by final result.",
            ["result"],
            registry=self.registry,
        )
        self.calls_total = Counter(
            "sandbox_calls_total",
            "Calls.json create requests, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.inbound_total = Counter(
            "sandbox_inbound_webhooks_total",
            "Simulated inbound texts POSTed to ingest, by ingest's HTTP status.",
            ["status"],
            registry=self.registry,
        )
        self._http: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # A burst of thousands of messages must not put thousands of callbacks into httpx's
        # pool at once (its queue scan is linear per request and starves the event loop).
        self._callback_slots = asyncio.Semaphore(settings.callback_concurrency)

    # --- plumbing -----------------------------------------------------------------------

    @property
    def auth_token(self) -> str:
        return self.settings.auth_token.get_secret_value()

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.settings.callback_timeout_s,
                headers={"User-Agent": "TwilioProxy/1.1"},
            )
        return self._http

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def check_auth(self, request: Request, account_sid: str) -> None:
        """HTTP Basic with the account SID and auth token, for the path's account."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            raise TwilioApiError(20003)
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise TwilioApiError(20003) from None
        user, _, password = decoded.partition(":")
        user_ok = hmac.compare_digest(user.encode(), self.settings.account_sid.encode())
        password_ok = hmac.compare_digest(password.encode(), self.auth_token.encode())
        if not (user_ok and password_ok) or account_sid != self.settings.account_sid:
            raise TwilioApiError(20003)

    # --- outbound -------------------------------------------------------------------------

    async def create_message(self, account_sid: str, form: dict[str, str]) -> StoredMessage:
        try:
            req = validate_create(form)
        except TwilioApiError as err:
            self.messages_total.labels(outcome="rejected", code=str(err.code)).inc()
            log.info("message rejected with Twilio error %d", err.code)
            raise
        message = StoredMessage(
            sid=new_sid("SM"),
            account_sid=account_sid,
            to=req.to,
            from_=req.from_ or self.settings.from_number,
            body=req.body,
            status="queued",
            direction="outbound-api",
            num_segments=num_segments(req.body),
            messaging_service_sid=req.messaging_service_sid,
            status_callback=req.status_callback,
        )
        await self.store.add(message)
        self.messages_total.labels(outcome="accepted", code="none").inc()
        log.info("message %s queued (%d segments)", message.sid, message.num_segments)
        callback = req.status_callback or self.settings.status_callback_url
        self.spawn(self._lifecycle(message.sid, callback))
        return message

    async def _lifecycle(self, sid: str, callback_url: str | None) -> None:
        """queued -> sent -> delivered, with a status callback at each step."""
        delay = self.settings.callback_delay_ms / 1000
        try:
            for status in ("sent", "delivered"):
                await asyncio.sleep(delay)
                message = await self.store.set_status(sid, status)
                if message is None:  # the store was cleared
                    return
                if callback_url:
                    await self._status_callback(callback_url, message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("status lifecycle of message %s failed", sid)

    async def _status_callback(self, url: str, message: StoredMessage) -> None:
        form = status_callback_form(message)
        headers = {
            "X-Twilio-Signature": sign(self.auth_token, url, form),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        }
        attempts = self.settings.callback_attempts
        for attempt in range(1, attempts + 1):
            reason: str
            try:
                async with self._callback_slots:
                    response = await self.http().post(url, data=form, headers=headers)
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            else:
                if response.is_success:
                    self.callbacks_total.labels(result="delivered").inc()
                    log.info(
                        "status callback %s for message %s accepted (HTTP %d)",
                        message.status,
                        message.sid,
                        response.status_code,
                    )
                    return
                if response.status_code < 500 and response.status_code != 429:
                    self.callbacks_total.labels(result="rejected").inc()
                    log.warning(
                        "status callback %s for message %s to %s rejected with HTTP %d",
                        message.status,
                        message.sid,
                        redact_url(url),
                        response.status_code,
                    )
                    return
                reason = f"HTTP {response.status_code}"
            log.warning(
                "status callback %s for message %s to %s failed (attempt %d/%d): %s",
                message.status,
                message.sid,
                redact_url(url),
                attempt,
                attempts,
                reason,
            )
            if attempt < attempts:
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
        self.callbacks_total.labels(result="failed").inc()

    async def apply_fault(self, fault: FaultState) -> Response | None:
        """The injected fault for one create (a message or a call); None: carry on."""
        if fault.mode == "slow":
            self.messages_total.labels(outcome="fault", code="slow").inc()
            log.info("fault injection: delaying a create by %d ms", fault.delay_ms)
            await asyncio.sleep(fault.delay_ms / 1000)
            return None
        if fault.mode == "drop":
            self.messages_total.labels(outcome="fault", code="drop").inc()
            log.info("fault injection: dropping a create request")
            return _DroppedResponse()
        code = 20429 if fault.mode == "429" else 20500
        self.messages_total.labels(outcome="fault", code=str(code)).inc()
        log.info("fault injection: answering a create with Twilio error %d", code)
        response = _twilio_error(TwilioApiError(code))
        if code == 20429:
            response.headers["Retry-After"] = "1"
        return response

    # --- inbound --------------------------------------------------------------------------

    async def inbound(self, from_: str, to: str, body: str) -> InboundResult:
        """A patient texts the service: record it, POST the signed webhook to ingest, and
        record any TwiML ``<Message>`` reply as an outbound text to the patient."""
        message = StoredMessage(
            sid=new_sid("SM"),
            account_sid=self.settings.account_sid,
            to=to,
            from_=from_,
            body=body,
            status="received",
            direction="inbound",
            num_segments=num_segments(body) if body else 1,
        )
        await self.store.add(message)
        form = inbound_webhook_form(message)
        headers = {
            "X-Twilio-Signature": sign(self.auth_token, self.settings.inbound_signed_url, form),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        }
        try:
            response = await self.http().post(
                self.settings.inbound_post_url, data=form, headers=headers
            )
        except httpx.HTTPError as exc:
            self.inbound_total.labels(status="unreachable").inc()
            log.warning(
                "inbound webhook for message %s to %s failed: %s",
                message.sid,
                redact_url(self.settings.inbound_post_url),
                type(exc).__name__,
            )
            return InboundResult(message, None, None, [])
        self.inbound_total.labels(status=str(response.status_code)).inc()
        log.info(
            "inbound message %s delivered to ingest (HTTP %d)", message.sid, response.status_code
        )
        replies: list[StoredMessage] = []
        if response.is_success:
            for reply_to, reply_body in twiml_replies(response.text):
                reply = StoredMessage(
                    sid=new_sid("SM"),
                    account_sid=self.settings.account_sid,
                    to=reply_to or from_,
                    from_=to,
                    body=reply_body,
                    status="delivered",
                    direction="outbound-reply",
                    num_segments=num_segments(reply_body),
                )
                await self.store.add(reply)
                replies.append(reply)
        return InboundResult(message, response.status_code, response.text, replies)


def _twilio_error(err: TwilioApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if err.status == 401 else None
    return JSONResponse(error_json(err.code, err.message), status_code=err.status, headers=headers)


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
        return _twilio_error(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.startswith(f"/{API_VERSION}/"):
            if exc.status_code == 404:
                return _twilio_error(TwilioApiError(20404))
            return JSONResponse(
                {"code": exc.status_code, "message": str(exc.detail), "status": exc.status_code},
                status_code=exc.status_code,
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    app.add_exception_handler(TwilioApiError, on_twilio_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.include_router(calls_router(sandbox))  # Twilio's Calls resource, /sandbox/calls

    # --- Twilio's Messages API ----------------------------------------------------------

    @app.post(API_PREFIX + "/{account_sid}/Messages.json", status_code=201)
    async def create_message(account_sid: str, request: Request) -> Response:
        sandbox.check_auth(request, account_sid)
        # The request is read before any fault: a slow answer still creates the message even
        # when the client has given up waiting, as Twilio does once it has the request.
        form = await read_form(request)
        fault = await sandbox.faults.take()
        if fault.mode != "none":
            response = await sandbox.apply_fault(fault)
            if response is not None:
                return response
        message = await sandbox.create_message(account_sid, form)
        return JSONResponse(message_json(message), status_code=201)

    @app.get(API_PREFIX + "/{account_sid}/Messages.json")
    async def list_messages(account_sid: str, request: Request) -> Response:
        sandbox.check_auth(request, account_sid)
        query = request.query_params
        try:
            page_size = min(max(int(query.get("PageSize", "50")), 1), 1000)
        except ValueError:
            page_size = 50
        found = await sandbox.store.list(to=query.get("To"), from_=query.get("From"))
        try:
            found = filter_date_sent(found, query)
        except ValueError:
            raise TwilioApiError(20001, "Invalid DateSent filter") from None
        return JSONResponse(message_page_json(account_sid, found, page_size))

    @app.get(API_PREFIX + "/{account_sid}/Messages/{sid}.json")
    async def fetch_message(account_sid: str, sid: str, request: Request) -> Response:
        sandbox.check_auth(request, account_sid)
        message = await sandbox.store.get(sid)
        if message is None or message.account_sid != account_sid:
            raise TwilioApiError(20404, f"The requested resource {request.url.path} was not found")
        return JSONResponse(message_json(message))

    @app.delete(API_PREFIX + "/{account_sid}/Messages/{sid}.json", status_code=204)
    async def delete_message(account_sid: str, sid: str, request: Request) -> Response:
        """Twilio's message DELETE: the message and its body leave the store (204); an
        unknown SID (or another account's) is Twilio's 20404 (404)."""
        sandbox.check_auth(request, account_sid)
        message = await sandbox.store.get(sid)
        if message is None or message.account_sid != account_sid:
            raise TwilioApiError(20404, f"The requested resource {request.url.path} was not found")
        await sandbox.store.delete(sid)
        return Response(status_code=204)

    # --- sandbox controls -----------------------------------------------------------------

    @app.get("/sandbox/messages")
    async def sandbox_messages(to: str | None = None) -> dict[str, list[dict[str, Any]]]:
        found = await sandbox.store.list(to=to)
        return {"messages": [sandbox_view(m) for m in found]}

    @app.delete("/sandbox/messages")
    async def clear_messages() -> dict[str, int]:
        cleared = await sandbox.store.clear()
        log.info("store cleared (%d messages)", cleared)
        return {"deleted": cleared}

    @app.post("/sandbox/inbound")
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
        result = await sandbox.inbound(from_.strip(), to.strip(), body)
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

    @app.get("/sandbox/faults")
    async def get_faults() -> dict[str, object]:
        return (await sandbox.faults.current()).as_json()

    @app.post("/sandbox/faults")
    async def set_faults(fault: FaultRequest) -> dict[str, object]:
        state = await sandbox.faults.set(fault.mode, fault.count, fault.delay_ms)
        log.info("fault injection set to %s (count %s)", state.mode, state.remaining)
        return state.as_json()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        messages = await sandbox.store.list()
        calls = await sandbox.calls.list()
        return HTMLResponse(render_page(messages, settings.from_number, calls))

    # --- probes ---------------------------------------------------------------------------

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
