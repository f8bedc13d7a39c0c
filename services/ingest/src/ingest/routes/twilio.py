"""Twilio's webhooks: inbound SMS, message status callbacks, and a page call's keypress and
status. Each is signed (``X-Twilio-Signature``) and stored in the outbox before it is
answered, so a Kafka outage still answers 200."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import Counter
from pydantic import ValidationError
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse

from ingest import consent as consent_record
from ingest import inbound, outbox, registry, voice, webhook
from ingest.api import error_doc, invalid
from ingest.context import Ctx, IngestContext
from ingest.unit_of_work import KEY_NAMESPACE
from shared.audit import sms_actor
from shared.events import MessageStatusReported, MessageStatusReportedPayload
from shared.logs import patient_ref
from shared.topics import PROVIDER_EVENTS
from shared.web import ApiError

log = logging.getLogger(__name__)

router = APIRouter()

MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
#: What an inbound text does to a patient's data, for the audit trail (ACK: the notifier's).
SMS_ACTIONS = {"report": "report.write", "stop": "consent.change", "start": "consent.change"}

INBOUND = Counter(
    "ingest_sms_inbound_total", "Inbound texts by what they meant.", ["outcome", "replayed"]
)
STATUS_CALLBACKS = Counter(
    "ingest_sms_status_callbacks_total", "Twilio status callbacks by status.", ["status"]
)
CALL_STATUSES = Counter(
    "ingest_call_status_callbacks_total", "Page call status callbacks by status.", ["status"]
)
REJECTED_SIGNATURES = Counter(
    "ingest_twilio_signature_rejected_total", "Webhooks refused for their signature.", ["path"]
)
# Known label values start at 0, so dashboards and rate() see the series before the first one.
for _outcome in ("report", "stop", "start", "ack"):
    INBOUND.labels(outcome=_outcome, replayed="false")
for _status in ("delivered", "failed", "undelivered"):
    STATUS_CALLBACKS.labels(status=_status)

WEBHOOK_ERRORS: dict[int | str, dict[str, Any]] = {
    403: error_doc("Missing or wrong X-Twilio-Signature"),
    409: error_doc("A MessageSid replayed with different content, or the simulated clock unset"),
    413: error_doc("Body over 64 KiB"),
    422: error_doc("A correctly signed request without the fields Twilio always sends"),
    # Stored before the answer (ingest.outbox), so a Kafka outage still answers 200.
    503: error_doc(
        "The database unreachable; nothing recorded (Twilio then tries the Fallback URL)"
    ),
}


def twiml(text: str | None) -> str:
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)


def _form_body(fields: dict[str, str], required: list[str]) -> dict[str, Any]:
    """OpenAPI for a Twilio webhook: a signed form post."""
    return {
        "parameters": [
            {
                "name": "X-Twilio-Signature",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": "HMAC of PUBLIC_BASE_URL + path and the form fields",
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            k: {"type": "string", "description": v} for k, v in fields.items()
                        },
                        "required": required,
                    }
                }
            },
        },
    }


async def signed_form(
    ctx: IngestContext, request: Request, *, inbound: bool
) -> ImmutableMultiDict[str, str]:
    """The webhook's form fields, once ``X-Twilio-Signature`` proves Twilio sent them and
    they name our account and numbers (``webhook.check_form``).

    The signature covers the URL Twilio was configured with, so it is checked against
    ``PUBLIC_BASE_URL`` + the path (+ the query), never the URL the request arrived on.
    """
    raw = (await request.body()).decode("utf-8", errors="replace")
    form = ImmutableMultiDict(parse_qsl(raw, keep_blank_values=True))
    signature = request.headers.get("x-twilio-signature", "")
    url = ctx.settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    algorithm = get_signature_algorithm(request.headers.get("x-twilio-webhooks-signature-settings"))
    if not signature or not ctx.validator.validate(url, form, signature, algorithm):
        REJECTED_SIGNATURES.labels(path=request.url.path).inc()
        log.warning("webhook refused: %s X-Twilio-Signature", "wrong" if signature else "no")
        raise ApiError(
            403,
            "invalid_signature",
            "The X-Twilio-Signature header is missing or does not match this request.",
        )
    webhook.check_form(
        form,
        account_sid=ctx.settings.twilio_account_sid,
        our_numbers=ctx.settings.our_numbers,
        inbound=inbound,
    )
    return form


@router.post(
    "/v1/twilio/inbound",
    response_class=Response,
    responses={
        200: {
            "description": "TwiML: the reply to the texter (possibly empty)",
            "content": {"text/xml": {"schema": {"type": "string"}}},
        },
        **WEBHOOK_ERRORS,
    },
    openapi_extra=_form_body(
        {
            "MessageSid": "SM + 32 hex digits",
            "From": "the texter's phone, E.164",
            "To": "our number",
            "Body": "the text",
            "OptOutType": "STOP, START or HELP (Advanced Opt-Out)",
        },
        ["MessageSid", "From"],
    ),
)
async def twilio_inbound(request: Request, ctx: Ctx) -> Response:
    """Twilio's inbound SMS webhook: a reply becomes a report, STOP/START a consent
    change, ``ACK <code>`` from a care-team phone an acknowledgement; answers TwiML."""
    form = await signed_form(ctx, request, inbound=True)
    text = inbound.InboundText(
        message_sid=form.get("MessageSid", ""),
        from_phone=form.get("From", ""),
        body=webhook.capped_body(form.get("Body", "")),
        opt_out_type=form.get("OptOutType") or None,
    )
    if not MESSAGE_SID.match(text.message_sid):
        raise invalid("MessageSid", "must be SM or MM and 32 hex digits")
    if not text.from_phone:
        raise invalid("From", "is required")
    res = ctx.res
    fingerprint = registry.fingerprint(
        {"from": text.from_phone, "body": text.body, "opt_out": text.opt_out_type}
    )
    async with ctx.unit_of_work("twilio-inbound", text.message_sid, fingerprint) as uow:
        if uow.replay is not None:
            response, outcome_label, replayed = uow.replay, "replay", "true"
        else:
            conn = uow.conn
            now = await ctx.clock_now(conn)
            sender = await registry.sender(conn, text.from_phone)
            outcome = inbound.decide(text, sender, now, ctx.texts)
            outcome_label, replayed = outcome.label, "false"
            action = SMS_ACTIONS.get(outcome.label)
            if action is not None and sender.patient_id is not None:
                # The patient's own phone is the identity here (recorded by reference).
                await ctx.trail.record(
                    sms_actor(patient_ref(text.from_phone)),
                    action,
                    "allowed",
                    patient_id=sender.patient_id,
                    resource=f"sms/{text.message_sid}",
                    source="sms",
                )
            response = Response(twiml(outcome.reply), media_type="text/xml")
            uow.answer(response)
            if outcome.consent is not None and sender.patient_id is not None:
                await registry.set_consent(conn, sender.patient_id, outcome.consent, now)
                await consent_record.record(
                    conn,
                    patient_id=sender.patient_id,
                    sms_consent=outcome.consent,
                    channel="sms_keyword",
                    actor=consent_record.PATIENT_BY_SMS,
                    event_id=outcome.publish[0].event.event_id,
                    occurred_at=now,
                    keyword="start" if outcome.consent else "stop",
                )
            if outcome.ask is not None and sender.patient_id is not None:
                asked_at = now if outcome.ask == "asked" else None
                await registry.set_grade_asked(conn, sender.patient_id, asked_at)
            for item in outcome.publish:  # published by the relay: Kafka may be down
                await uow.enqueue(item.topic, item.event, key=item.key, codec=res.codec)
    await ctx.flush(uow.stored_through)
    INBOUND.labels(outcome=outcome_label, replayed=replayed).inc()
    log.info("inbound text %s: %s", text.message_sid, outcome_label)
    return response


@router.post(
    "/v1/twilio/status",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Recorded"}, **WEBHOOK_ERRORS},
    openapi_extra=_form_body(
        {
            "MessageSid": "the outbound message's SID",
            "MessageStatus": "queued, sent, delivered, undelivered, failed, …",
            "ErrorCode": "Twilio's error code, when failed or undelivered",
        },
        ["MessageSid", "MessageStatus"],
    ),
)
async def twilio_status(request: Request, ctx: Ctx) -> Response:
    """Twilio's status callback → ``MessageStatusReported`` on provider-events.v1."""
    form = await signed_form(ctx, request, inbound=False)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = form.get("MessageStatus") or form.get("SmsStatus") or ""
    error_code = form.get("ErrorCode") or None
    try:
        payload = MessageStatusReportedPayload(
            message_sid=sid,
            status=status,  # validated here
            error_code=int(error_code) if error_code and error_code.isdigit() else None,
        )
    except ValidationError as exc:
        fields = [
            {"field": _status_field(str(e["loc"][0]) if e["loc"] else ""), "message": e["msg"]}
            for e in exc.errors()
        ]
        raise ApiError(422, "invalid_fields", "Some fields are invalid.", fields) from None
    res = ctx.res
    now = await ctx.clock_now(res.pool)
    event = MessageStatusReported(
        event_id=uuid.uuid5(
            KEY_NAMESPACE, f"twilio-status:{sid}:{payload.status}:{payload.error_code}"
        ),
        occurred_at=now,
        recorded_at=now,
        source="twilio",
        payload=payload,
    )
    async with res.pool.acquire() as conn:  # one insert: published by the relay
        row = await outbox.put(conn, PROVIDER_EVENTS, event, key=sid)
    await ctx.flush(row or 0)
    STATUS_CALLBACKS.labels(status=payload.status).inc()
    return Response(status_code=204)


@router.post(
    "/v1/twilio/voice",
    response_class=Response,
    responses={200: {"description": "TwiML said to the callee"}, **WEBHOOK_ERRORS},
)
async def twilio_voice(request: Request, ctx: Ctx, code: str = "") -> Response:
    """A page call's keypress (``<Gather>`` action, ``?code=`` the alert's ACK code):
    key 1 acknowledges, as ``ACK <code>`` from the called phone would."""
    form = await signed_form(ctx, request, inbound=False)
    press = voice.Keypress(
        call_sid=form.get("CallSid", ""),
        callee=form.get("To", ""),
        digits=form.get("Digits", ""),
        ack_code=code.upper(),
    )
    if not voice.CALL_SID.match(press.call_sid):
        raise invalid("CallSid", "must be CA and 32 hex digits")
    if not voice.ACK_CODE.match(press.ack_code):
        raise invalid("code", "must be the page's ACK code")
    async with ctx.unit_of_work("twilio-voice", key=None) as uow:
        answer = voice.decide(press, await ctx.clock_now(uow.conn))
        if answer.ack is not None:
            await uow.enqueue(PROVIDER_EVENTS, answer.ack, key=press.ack_code, codec=None)
    await ctx.flush(uow.stored_through)
    INBOUND.labels(
        outcome="call_ack" if uow.stored_through else "call_other", replayed="false"
    ).inc()
    return Response(answer.twiml, media_type="text/xml")


@router.post(
    "/v1/twilio/voice/status",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Counted"}, **WEBHOOK_ERRORS},
)
async def twilio_voice_status(request: Request, ctx: Ctx) -> Response:
    """A page call's status callback: counted (what matters is the keypress)."""
    form = await signed_form(ctx, request, inbound=False)
    status = form.get("CallStatus", "")
    CALL_STATUSES.labels(status=status if status in voice.CALL_STATUSES else "other").inc()
    return Response(status_code=204)


def _status_field(name: str) -> str:
    return {"message_sid": "MessageSid", "status": "MessageStatus", "error_code": "ErrorCode"}.get(
        name, name
    )
