"""The port the notifier sends texts through, and its Twilio adapter."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

#: Twilio error codes that no retry can fix (invalid number, unsubscribed, not mobile, …).
PERMANENT_CODES = frozenset({21211, 21408, 21610, 21612, 21614, 21606, 21602, 21604, 21617})
#: The recipient replied STOP (or the carrier blocks us): the patient opted out.
UNSUBSCRIBED = 21610


@dataclass(frozen=True)
class SendResult:
    provider_sid: str
    status: str


@dataclass(frozen=True)
class ProviderMessage:
    """A message as the provider lists it (for reconciliation)."""

    sid: str
    to: str
    body: str
    status: str
    date_created: dt.datetime | None


class SendError(Exception):
    """A failed provider call. ``permanent``: no retry can help. ``ambiguous``: the request
    may have reached the provider and created the message (a timeout, a dropped connection,
    a 5xx), so look it up before sending again."""

    def __init__(
        self, message: str, *, code: int | None, permanent: bool, ambiguous: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent
        self.ambiguous = ambiguous


class SmsSender(Protocol):
    async def send(self, to: str, body: str) -> SendResult: ...

    async def recent(self, to: str, since: dt.datetime) -> list[ProviderMessage]:
        """Outbound messages to ``to`` created at or after ``since`` (newest first);
        raises ``SendError`` when the provider cannot be asked."""
        ...


class BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """Sends the SDK's requests to another host (the sandbox); the SDK has no such option."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        target = urlsplit(base_url)
        self._scheme, self._netloc = target.scheme, target.netloc

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        parts = urlsplit(url)
        url = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, url, *args, **kwargs)


def twilio_client(
    account_sid: str, auth_token: str, base_url: str | None, timeout: float
) -> Client:
    """The SDK's client, talking to ``base_url`` (the sandbox) when given, else Twilio."""
    http = (
        BaseUrlHttpClient(base_url, timeout=timeout)
        if base_url
        else TwilioHttpClient(timeout=timeout)
    )
    return Client(account_sid, auth_token, http_client=http)


def classify(exc: TwilioRestException) -> SendError:
    code = exc.code if isinstance(exc.code, int) else None
    status = int(exc.status or 0)
    permanent = code in PERMANENT_CODES or (400 <= status < 500 and status != 429)
    return SendError(
        f"twilio {status} {code}", code=code, permanent=permanent, ambiguous=status >= 500
    )


class TwilioSmsSender:
    """``SmsSender`` through the real twilio SDK, run in a thread to keep the loop free."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_: str | None,
        messaging_service_sid: str | None,
        base_url: str | None,
        status_callback: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._client = twilio_client(account_sid, auth_token, base_url, timeout)
        self._from = from_
        self._service = messaging_service_sid
        self._callback = status_callback

    def _create(self, to: str, body: str) -> SendResult:
        kwargs: dict[str, Any] = {"to": to, "body": body}
        if self._service:
            kwargs["messaging_service_sid"] = self._service
        else:
            kwargs["from_"] = self._from
        if self._callback:
            kwargs["status_callback"] = self._callback
        try:
            message = self._client.messages.create(**kwargs)
        except TwilioRestException as exc:
            raise classify(exc) from exc
        except OSError as exc:  # refused, reset, dropped, timed out (requests' are OSError)
            raise SendError(type(exc).__name__, code=None, permanent=False, ambiguous=True) from exc
        return SendResult(provider_sid=str(message.sid), status=str(message.status))

    async def send(self, to: str, body: str) -> SendResult:
        return await asyncio.to_thread(self._create, to, body)

    def _recent(self, to: str, since: dt.datetime) -> list[ProviderMessage]:
        # Not filtered by DateSent: a message still queued has no date_sent yet. Twilio
        # lists newest first; a page of 50 to one phone covers any reconciliation window.
        try:
            listed = self._client.messages.list(to=to, limit=50, page_size=50)
        except TwilioRestException as exc:
            raise classify(exc) from exc
        except TwilioException as exc:  # listing raises the base class for non-200 pages
            status = exc.args[1].status_code if len(exc.args) > 1 else None
            raise SendError(f"twilio list {status}", code=None, permanent=False) from exc
        except OSError as exc:
            raise SendError(type(exc).__name__, code=None, permanent=False) from exc
        found = []
        for m in listed:
            created = m.date_created if isinstance(m.date_created, dt.datetime) else None
            if created is not None and created < since:
                continue
            if not str(m.direction or "").startswith("outbound"):
                continue
            found.append(
                ProviderMessage(
                    sid=str(m.sid),
                    to=str(m.to),
                    body=str(m.body or ""),
                    status=str(m.status),
                    date_created=created,
                )
            )
        return found

    async def recent(self, to: str, since: dt.datetime) -> list[ProviderMessage]:
        return await asyncio.to_thread(self._recent, to, since)
