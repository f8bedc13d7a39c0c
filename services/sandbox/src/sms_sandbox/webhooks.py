"""Webhook delivery: signed status callbacks (retried) and inbound texts POSTed to ingest."""

from __future__ import annotations

import asyncio
import logging
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry, Counter

from sms_sandbox.settings import SandboxSettings
from sms_sandbox.store import MessageStore, StoredMessage
from sms_sandbox.twilio_wire import (
    inbound_webhook_form,
    new_sid,
    num_segments,
    redact_url,
    sign,
    status_callback_form,
)

log = logging.getLogger(__name__)


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


@dataclass
class InboundResult:
    message: StoredMessage
    status: int | None
    twiml: str | None
    replies: list[StoredMessage]


class Webhooks:
    """The sandbox's outgoing HTTP: one client, bounded concurrency for callbacks."""

    def __init__(
        self, settings: SandboxSettings, store: MessageStore, registry: CollectorRegistry
    ) -> None:
        self.settings = settings
        self.store = store
        self.callbacks_total = Counter(
            "sandbox_status_callbacks_total",
            "Status callbacks, by final result.",
            ["result"],
            registry=registry,
        )
        self.inbound_total = Counter(
            "sandbox_inbound_webhooks_total",
            "Simulated inbound texts POSTed to ingest, by ingest's HTTP status.",
            ["status"],
            registry=registry,
        )
        self._http: httpx.AsyncClient | None = None
        # A burst of thousands of messages must not put thousands of callbacks into httpx's
        # pool at once (its queue scan is linear per request and starves the event loop).
        self._callback_slots = asyncio.Semaphore(settings.callback_concurrency)

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

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def lifecycle(self, sid: str, callback_url: str | None) -> None:
        """queued -> sent -> delivered, with a status callback at each step."""
        delay = self.settings.callback_delay_ms / 1000
        try:
            for status in ("sent", "delivered"):
                await asyncio.sleep(delay)
                message = await self.store.set_status(sid, status)
                if message is None:  # the store was cleared
                    return
                if callback_url:
                    await self.status_callback(callback_url, message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("status lifecycle of message %s failed", sid)

    async def status_callback(self, url: str, message: StoredMessage) -> None:
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
