"""The port the notifier sends texts through, and its Twilio adapter."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

#: Twilio error codes that no retry can fix (invalid number, unsubscribed, not mobile, …).
PERMANENT_CODES = frozenset({21211, 21408, 21610, 21612, 21614, 21606, 21602, 21604, 21617})


@dataclass(frozen=True)
class SendResult:
    provider_sid: str
    status: str


class SendError(Exception):
    def __init__(self, message: str, *, code: int | None, permanent: bool) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent


class SmsSender(Protocol):
    async def send(self, to: str, body: str) -> SendResult: ...


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
        http = (
            BaseUrlHttpClient(base_url, timeout=timeout)
            if base_url
            else TwilioHttpClient(timeout=timeout)
        )
        self._client = Client(account_sid, auth_token, http_client=http)
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
            code = exc.code if isinstance(exc.code, int) else None
            permanent = code in PERMANENT_CODES or (400 <= exc.status < 500 and exc.status != 429)
            raise SendError(f"twilio {exc.status} {code}", code=code, permanent=permanent) from exc
        except OSError as exc:  # connection refused, reset, timeout (requests' errors are OSError)
            raise SendError(type(exc).__name__, code=None, permanent=False) from exc
        return SendResult(provider_sid=str(message.sid), status=str(message.status))

    async def send(self, to: str, body: str) -> SendResult:
        return await asyncio.to_thread(self._create, to, body)
