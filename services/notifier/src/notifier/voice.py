"""The second channel for urgent pages: a phone call that reads the alert and takes a
keypress as the acknowledgement. The port (``Caller``), its Twilio adapter (the real SDK's
``calls.create`` with inline TwiML) and the TwiML itself."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol
from urllib.parse import urlencode

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from twilio.twiml.voice_response import Gather, VoiceResponse

from notifier.sms import SendError, SendResult, classify

#: The key that acknowledges a page on a call.
ACK_KEY = "1"


def call_twiml(text: str, action_url: str, language: str = "en") -> str:
    """Say the alert, then wait for one key; ``ACK_KEY`` posts to ``action_url``. Said
    twice, as people miss the start of a call."""
    voice_lang = "es-US" if language == "es" else "en-US"
    prompt = (
        f"Pulse {ACK_KEY} para confirmar."
        if language == "es"
        else f"Press {ACK_KEY} to acknowledge."
    )
    response = VoiceResponse()
    gather = Gather(num_digits=1, action=action_url, method="POST", timeout=10)
    for _ in range(2):
        gather.say(text, language=voice_lang)
        gather.say(prompt, language=voice_lang)
    response.append(gather)
    response.say(
        "No key pressed. The page stays open." if language != "es" else "Sin respuesta.",
        language=voice_lang,
    )
    return str(response)


def ack_url(public_base_url: str, ack_code: str) -> str:
    """Where the call's keypress goes: ingest's voice webhook, naming the alert's code."""
    return f"{public_base_url.rstrip('/')}/v1/twilio/voice?{urlencode({'code': ack_code})}"


class Caller(Protocol):
    async def call(self, to: str, twiml: str) -> SendResult: ...


class TwilioCaller:
    """``Caller`` through the twilio SDK (a thread, to keep the loop free)."""

    def __init__(self, client: Client, *, from_: str, status_callback: str | None) -> None:
        self._client = client
        self._from = from_
        self._callback = status_callback

    def _create(self, to: str, twiml: str) -> SendResult:
        kwargs: dict[str, Any] = {"to": to, "from_": self._from, "twiml": twiml}
        if self._callback:
            kwargs["status_callback"] = self._callback
            kwargs["status_callback_event"] = ["initiated", "ringing", "answered", "completed"]
        try:
            call = self._client.calls.create(**kwargs)
        except TwilioRestException as exc:
            raise classify(exc) from exc
        except OSError as exc:
            raise SendError(type(exc).__name__, code=None, permanent=False, ambiguous=True) from exc
        return SendResult(provider_sid=str(call.sid), status=str(call.status))

    async def call(self, to: str, twiml: str) -> SendResult:
        return await asyncio.to_thread(self._create, to, twiml)
