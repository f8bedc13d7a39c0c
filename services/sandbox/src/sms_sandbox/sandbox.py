"""The sandbox's state (messages, calls, faults, metrics) and what a create request does."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sms_sandbox.calls import CallStore
from sms_sandbox.settings import SandboxSettings
from sms_sandbox.store import Faults, FaultState, MessageStore, StoredMessage
from sms_sandbox.twilio_wire import (
    TwilioApiError,
    error_json,
    new_sid,
    num_segments,
    read_form,
    validate_create,
)
from sms_sandbox.webhooks import Webhooks

log = logging.getLogger(__name__)


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


def twilio_error(err: TwilioApiError) -> JSONResponse:
    """Twilio's JSON error body for ``err`` (401s with Basic's challenge)."""
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if err.status == 401 else None
    return JSONResponse(error_json(err.code, err.message), status_code=err.status, headers=headers)


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
        self.webhooks = Webhooks(settings, self.store, self.registry)
        self.calls_total = Counter(
            "sandbox_calls_total",
            "Calls.json create requests, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def auth_token(self) -> str:
        return self.settings.auth_token.get_secret_value()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.webhooks.aclose()

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

    async def admit(
        self, request: Request, account_sid: str
    ) -> tuple[dict[str, str], Response | None]:
        """The start of every create (a message or a call): HTTP Basic, the form, then the
        injected fault if one is set. The form is read before any fault, so a slow answer
        still creates the resource even when the client has given up waiting, as Twilio does
        once it has the request. Returns the form and, when the fault answers instead of
        the create, that answer."""
        self.check_auth(request, account_sid)
        form = await read_form(request)
        fault = await self.faults.take()
        if fault.mode == "none":
            return form, None
        return form, await self.apply_fault(fault)

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
        self.spawn(self.webhooks.lifecycle(message.sid, callback))
        return message

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
        response = twilio_error(TwilioApiError(code))
        if code == 20429:
            response.headers["Retry-After"] = "1"
        return response
