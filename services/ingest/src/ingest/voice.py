"""A page's phone call, answered: the keypress Twilio posts from the call's ``<Gather>``
becomes the same ``AckReceived`` an ``ACK <code>`` text does. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from twilio.twiml.voice_response import VoiceResponse

from shared.events import AckReceived, AckReceivedPayload

#: The key that acknowledges (notifier/voice.py says so in the call).
ACK_KEY = "1"
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
ACK_CODE = re.compile(r"^[A-Z0-9]{4,12}$")
CALL_STATUSES = frozenset(
    {"queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed",
     "canceled"}
)  # fmt: skip
VOICE_NAMESPACE = uuid.UUID("0f6c2f4e-7a43-4c4f-9a55-3c1e2b9d7a21")


@dataclass(frozen=True)
class Keypress:
    call_sid: str
    callee: str  # the phone that was called (``To`` of an outbound call)
    digits: str
    ack_code: str


@dataclass(frozen=True)
class Answer:
    ack: AckReceived | None
    twiml: str


def decide(press: Keypress, now: dt.datetime) -> Answer:
    """``ACK_KEY`` acknowledges the page named by the call's code; any other key does not."""
    response = VoiceResponse()
    if press.digits != ACK_KEY:
        response.say("Not acknowledged. The page stays open.")
        return Answer(None, str(response))
    ack = AckReceived(
        event_id=uuid.uuid5(VOICE_NAMESPACE, f"keypress:{press.call_sid}"),
        occurred_at=now,
        recorded_at=now,
        source="twilio",
        payload=AckReceivedPayload(
            ack_code=press.ack_code, from_phone=press.callee, message_sid=press.call_sid
        ),
    )
    response.say("Acknowledged. Thank you.")
    return Answer(ack, str(response))
