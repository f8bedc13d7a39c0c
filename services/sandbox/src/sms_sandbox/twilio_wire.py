"""Twilio's wire formats as the sandbox speaks them: SIDs, dates, the Message resource JSON,
the legacy error body, the error table, the test-credential magic numbers, and the form
fields of status callbacks and inbound webhooks.

Error messages never echo phone numbers or bodies, so a caller that logs an exception's
text does not leak them.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from twilio.request_validator import RequestValidator

from sms_sandbox.store import StoredMessage

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_FROM = "+15005550006"
MAX_BODY_CHARS = 1600

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")


def new_sid(prefix: str = "SM") -> str:
    """A Twilio-shaped SID: two-letter prefix and 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


def rfc2822(when: dt.datetime | None) -> str | None:
    """Twilio's date format, e.g. ``Thu, 30 Jul 2015 20:12:31 +0000``."""
    if when is None:
        return None
    return email.utils.format_datetime(when.astimezone(dt.UTC))


def iso8601(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_e164(number: str) -> bool:
    return bool(E164.fullmatch(number))


# --- errors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TwilioError:
    code: int
    status: int
    message: str


ERRORS: dict[int, TwilioError] = {
    e.code: e
    for e in (
        TwilioError(12100, 400, "Document parse failure"),
        TwilioError(20001, 400, "Invalid parameter"),
        TwilioError(20003, 401, "Authenticate"),
        TwilioError(20404, 404, "The requested resource was not found"),
        TwilioError(20429, 429, "Too Many Requests"),
        TwilioError(20500, 500, "Internal Server Error"),
        TwilioError(21201, 400, "No 'To' number is specified"),
        TwilioError(21205, 400, "Url parameter is required."),
        TwilioError(21211, 400, "The 'To' number is not a valid phone number."),
        TwilioError(
            21408,
            400,
            "Permission to send an SMS has not been enabled for the region indicated by "
            "the 'To' number.",
        ),
        TwilioError(21602, 400, "Message body is required."),
        TwilioError(21603, 400, "A 'From' phone number is required."),
        TwilioError(21604, 400, "A 'To' phone number is required."),
        TwilioError(
            21606,
            400,
            "The 'From' phone number provided is not a valid message-capable Twilio phone "
            "number for this destination/account.",
        ),
        TwilioError(21609, 400, "Invalid StatusCallback url."),
        TwilioError(21610, 400, "Attempt to send to unsubscribed recipient."),
        TwilioError(
            21611, 400, "This 'From' number has exceeded the maximum number of queued messages."
        ),
        TwilioError(21612, 400, "The 'To' phone number is not currently reachable via SMS."),
        TwilioError(21614, 400, "The 'To' number is not a valid mobile number."),
        TwilioError(21617, 400, "The concatenated message body exceeds the 1600 character limit."),
        TwilioError(21701, 400, "The Messaging Service Sid is invalid."),
    )
}


class TwilioApiError(Exception):
    """Raised by the Messages API handlers; rendered as Twilio's legacy error body."""

    def __init__(self, code: int, message: str | None = None) -> None:
        entry = ERRORS[code]
        self.code = code
        self.status = entry.status
        self.message = message or entry.message
        super().__init__(self.message)


def error_json(code: int, message: str | None = None) -> dict[str, Any]:
    """Twilio's (legacy) REST error body, which the SDK turns into ``TwilioRestException``."""
    entry = ERRORS[code]
    return {
        "code": code,
        "message": message or entry.message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": entry.status,
    }


#: Twilio's test-credential magic numbers, as ``To``.
MAGIC_TO: dict[str, int] = {
    "+15005550001": 21211,  # invalid number
    "+15005550002": 21612,  # cannot route
    "+15005550003": 21408,  # no international permission
    "+15005550004": 21610,  # unsubscribed (blocked) recipient
    "+15005550009": 21614,  # not a mobile number
}

#: Twilio's test-credential magic numbers, as ``From``.
MAGIC_FROM: dict[str, int] = {
    "+15005550007": 21606,  # not owned by the account
    "+15005550008": 21611,  # queue full
}


@dataclass(frozen=True)
class OutboundRequest:
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None


def validate_create(form: dict[str, str]) -> OutboundRequest:
    """Validate Messages.json create parameters in Twilio's order; raise ``TwilioApiError``."""
    to = form.get("To", "").strip()
    from_ = form.get("From", "").strip() or None
    service = form.get("MessagingServiceSid", "").strip() or None
    body = form.get("Body", "")
    callback = form.get("StatusCallback", "").strip() or None

    if not to:
        raise TwilioApiError(21604)
    if not is_e164(to):
        raise TwilioApiError(21211)
    if from_ is None and service is None:
        raise TwilioApiError(21603)
    if service is not None and not MESSAGING_SERVICE_SID.fullmatch(service):
        raise TwilioApiError(21701)
    if from_ is not None:
        if not is_e164(from_):
            raise TwilioApiError(21606)
        if from_ in MAGIC_FROM:
            raise TwilioApiError(MAGIC_FROM[from_])
    if not body.strip():
        raise TwilioApiError(21602)
    if len(body) > MAX_BODY_CHARS:
        raise TwilioApiError(21617)
    if callback is not None and not re.fullmatch(r"https?://[^\s/]+\S*", callback):
        raise TwilioApiError(21609)
    if to in MAGIC_TO:
        raise TwilioApiError(MAGIC_TO[to])
    return OutboundRequest(to, from_, service, body, callback)


# --- segments ----------------------------------------------------------------------------

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """SMS segments: GSM-7 (160, or 153 per part) else UCS-2 (70, or 67 per part)."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in body):
        units = sum(2 if c in _GSM7_EXTENDED else 1 for c in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if units <= single:
        return 1
    return math.ceil(units / multi)


# --- resource shapes ----------------------------------------------------------------------


def message_uri(account_sid: str, sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"


def message_json(message: StoredMessage) -> dict[str, Any]:
    """The Message resource as Twilio returns it (everything ``MessageInstance`` reads)."""
    base = f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.sid}"
    return {
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": rfc2822(message.date_created),
        "date_sent": rfc2822(message.date_sent),
        "date_updated": rfc2822(message.date_updated),
        "direction": message.direction,
        "error_code": None,
        "error_message": None,
        "from": message.from_,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": "0",
        "num_segments": str(message.num_segments),
        "price": None,
        "price_unit": "USD",
        "sid": message.sid,
        "status": message.status,
        "subresource_uris": {
            "media": f"{base}/Media.json",
            "feedback": f"{base}/Feedback.json",
        },
        "to": message.to,
        "uri": f"{base}.json",
    }


def message_page_json(
    account_sid: str, messages: list[StoredMessage], page_size: int
) -> dict[str, Any]:
    """A one-page Messages.json list, newest first as Twilio lists them."""
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json?PageSize={page_size}&Page=0"
    shown = list(reversed(messages))[:page_size]
    return {
        "messages": [message_json(m) for m in shown],
        "end": max(len(shown) - 1, 0),
        "first_page_uri": uri,
        "next_page_uri": None,
        "page": 0,
        "page_size": page_size,
        "previous_page_uri": None,
        "start": 0,
        "uri": uri,
    }


def _when(value: str) -> dt.datetime:
    """A ``DateSent`` filter value: ``YYYY-MM-DD`` or an ISO 8601 instant (as the SDK sends)."""
    if len(value) == 10:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def filter_date_sent(
    messages: list[StoredMessage], query: Mapping[str, str]
) -> list[StoredMessage]:
    """Twilio's ``DateSent``, ``DateSent<`` and ``DateSent>`` list filters (inclusive; a
    message not sent yet has no date and never matches). Raises ``ValueError``."""
    exact, before, after = query.get("DateSent"), query.get("DateSent<"), query.get("DateSent>")
    if exact is None and before is None and after is None:
        return messages
    out = []
    for m in messages:
        sent = m.date_sent
        if sent is None:
            continue
        if exact is not None:
            day = _when(exact)
            if len(exact) == 10 and sent.astimezone(dt.UTC).date() != day.date():
                continue
            if len(exact) != 10 and sent.replace(microsecond=0) != day:
                continue
        if before is not None and sent > _when(before) + _day_if_date(before):
            continue
        if after is not None and sent < _when(after):
            continue
        out.append(m)
    return out


def _day_if_date(value: str) -> dt.timedelta:
    """``DateSent<=2026-05-01`` includes that whole day."""
    return (
        dt.timedelta(days=1) - dt.timedelta(microseconds=1) if len(value) == 10 else dt.timedelta()
    )


def sandbox_view(message: StoredMessage) -> dict[str, Any]:
    """The sandbox's own listing shape (``GET /sandbox/messages``)."""
    return {
        "sid": message.sid,
        "to": message.to,
        "from": message.from_,
        "body": message.body,
        "status": message.status,
        "direction": message.direction,
        "date_created": iso8601(message.date_created),
    }


def status_callback_form(message: StoredMessage) -> dict[str, str]:
    """The form fields Twilio POSTs to a message's StatusCallback."""
    form = {
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "AccountSid": message.account_sid,
        "From": message.from_,
        "To": message.to,
        "MessageStatus": message.status,
        "SmsStatus": message.status,
        "ApiVersion": API_VERSION,
    }
    if message.messaging_service_sid:
        form["MessagingServiceSid"] = message.messaging_service_sid
    return form


def _country(number: str) -> str:
    return "US" if number.startswith("+1") else ""


def inbound_webhook_form(message: StoredMessage) -> dict[str, str]:
    """The form fields Twilio POSTs to a number's incoming-message webhook."""
    return {
        "ToCountry": _country(message.to),
        "ToState": "",
        "SmsMessageSid": message.sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": message.sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": message.body,
        "FromCountry": _country(message.from_),
        "To": message.to,
        "ToZip": "",
        "NumSegments": str(message.num_segments),
        "MessageSid": message.sid,
        "AccountSid": message.account_sid,
        "From": message.from_,
        "ApiVersion": API_VERSION,
    }


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    """``X-Twilio-Signature`` for a POST of ``params`` to ``url``, as Twilio computes it."""
    return str(RequestValidator(auth_token).compute_signature(url, params))


def redact_url(url: str) -> str:
    """A URL without its query string or credentials, for log lines."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


async def read_form(request: Request) -> dict[str, str]:
    raw = await request.body()
    return dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
