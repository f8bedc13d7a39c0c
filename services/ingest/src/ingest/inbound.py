"""What ingest does with one inbound text: a pure decision, no I/O.

``decide(text, sender, now, texts)`` → the events to publish, the reply to send back in
TwiML (``None`` = an empty ``<Response/>``), and what to store: the new consent, and
whether the patient was just asked for a grade. The FastAPI handler looks the sender up,
calls this, publishes, and stores the answer for replays.

A reply with no clear grade is kept as a note (a red flag in it still counts) and the
patient is asked **once** to reply with a number: while an ask is open (``ASK_OPEN_FOR``
since ``Sender.grade_asked_at``) a further unclear reply is recorded and thanked, not asked
again; a graded reply closes the ask.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from pydantic import BaseModel

from ingest import sms_parser
from shared.events import (
    AckReceived,
    AckReceivedPayload,
    ConsentChanged,
    ConsentChangedPayload,
    Envelope,
    Language,
    SymptomReported,
    SymptomReportedPayload,
)
from shared.topics import PATIENT_EVENTS, PROVIDER_EVENTS

#: Event ids of inbound texts derive from the MessageSid, so a replay is the same event.
SMS_NAMESPACE = uuid.UUID("4f7c3a52-9a8e-4c59-bf7d-1d0e2a6b9c11")

#: How long one request for a number covers further unclear replies (then it is asked
#: again: the next check-in's reply is another question).
ASK_OPEN_FOR = dt.timedelta(hours=24)


def event_id_for(message_sid: str) -> uuid.UUID:
    return uuid.uuid5(SMS_NAMESPACE, f"twilio-inbound:{message_sid}")


E = TypeVar("E", bound=Envelope)


def _from_text(
    kind: type[E],
    event_id: uuid.UUID,
    now: dt.datetime,
    payload: BaseModel,
    patient_id: str | None = None,
) -> E:
    """The event a text becomes: its id derives from the MessageSid (a replayed webhook is
    the same event), and it happened when ingest received it."""
    return kind.model_validate(
        {
            "event_id": event_id,
            "occurred_at": now,
            "recorded_at": now,
            "patient_id": patient_id,
            "source": "sms",
            "payload": payload,
        }
    )


@dataclass(frozen=True)
class InboundText:
    message_sid: str
    from_phone: str
    body: str
    opt_out_type: str | None = None


@dataclass(frozen=True)
class Sender:
    """Who a phone belongs to: a patient, a care-team member, both or neither."""

    patient_id: str | None = None
    language: Language = "en"
    sms_consent: bool = True
    covers: tuple[str, ...] = ()  # patients whose care team lists this phone
    grade_asked_at: dt.datetime | None = None  # when we last asked for a number

    def asked_recently(self, now: dt.datetime) -> bool:
        return self.grade_asked_at is not None and now - self.grade_asked_at < ASK_OPEN_FOR

    @property
    def is_care_team(self) -> bool:
        return bool(self.covers)


@dataclass(frozen=True)
class Publish:
    topic: str
    event: Envelope
    key: str | None = None  # None: the event's patient_id


Label = Literal[
    "report", "stop", "start", "help", "ack", "unclear", "unknown_phone", "care_team_other"
]


@dataclass(frozen=True)
class Outcome:
    label: Label
    reply: str | None
    publish: tuple[Publish, ...] = ()
    consent: bool | None = None
    severity: int | None = field(default=None)
    #: "asked": store ``now`` as the patient's open ask; "answered": clear it; None: keep.
    ask: Literal["asked", "answered"] | None = None


@dataclass(frozen=True)
class Texts:
    """Reply wording, in each language the service speaks."""

    clinic_name: str = "the MVD clinic"

    def thanks(self, lang: Language, severity: int | None) -> str:
        if severity is None:
            return {
                "en": "Thank you, your message was recorded. If it is urgent, call your "
                "care team or emergency services.",
                "es": "Gracias, registramos su mensaje. Si es urgente, llame a su equipo "
                "médico o a emergencias.",
            }[lang]
        return {
            "en": f"Thank you. We recorded your twitching as {severity} (0 = none, 4 = severe).",
            "es": f"Gracias. Registramos sus espasmos como {severity} (0 = nada, 4 = grave).",
        }[lang]

    def clarify(self, lang: Language) -> str:
        return {
            "en": "Sorry, we could not tell the grade. Please reply with one number: 0 no "
            "twitching, 1 only when triggered, 2 mild, 3 moderate, 4 severe. If it is "
            "urgent, call your care team.",
            "es": "Perdón, no entendimos el grado. Responda con un solo número: 0 nada, "
            "1 solo con desencadenantes, 2 leve, 3 moderado, 4 grave. Si es urgente, "
            "llame a su equipo médico.",
        }[lang]

    def help(self, lang: Language) -> str:
        return {
            "en": f"{self.clinic_name}: recovery check-ins after your surgery. Reply with a "
            "number from 0 (no twitching) to 4 (severe), and any words you want your team "
            "to see. Reply STOP to stop texts, START to resume. For urgent problems call "
            "your care team or emergency services.",
            "es": f"{self.clinic_name}: seguimiento de su recuperación. Responda con un "
            "número del 0 (nada) al 4 (grave) y lo que quiera contar a su equipo. "
            "Responda STOP para dejar de recibir mensajes, START para reanudarlos. Si es "
            "urgente, llame a su equipo médico o a emergencias.",
        }[lang]

    def started(self, lang: Language) -> str:
        return {
            "en": f"You will get check-in texts from {self.clinic_name} again. Reply STOP to stop.",
            "es": f"Volverá a recibir mensajes de {self.clinic_name}. Responda STOP para dejarlos.",
        }[lang]

    def unknown_phone(self) -> str:
        return (
            "Sorry, this phone is not enrolled in recovery check-ins. Please contact "
            f"{self.clinic_name}. / Este teléfono no está inscrito; comuníquese con su "
            "clínica."
        )

    def ack_received(self, code: str) -> str:
        return f"ACK {code} received. Thank you."

    def care_team_hint(self) -> str:
        return "To acknowledge a page, reply ACK followed by the code in the page."


def decide(text: InboundText, sender: Sender, now: dt.datetime, texts: Texts) -> Outcome:
    reply = sms_parser.parse_reply(text.body, text.opt_out_type)
    event_id = event_id_for(text.message_sid)

    if isinstance(reply, sms_parser.Ack) and sender.is_care_team:
        ack = _from_text(
            AckReceived,
            event_id,
            now,
            AckReceivedPayload(
                ack_code=reply.code, from_phone=text.from_phone, message_sid=text.message_sid
            ),
        )
        return Outcome(
            "ack", texts.ack_received(reply.code), (Publish(PROVIDER_EVENTS, ack, reply.code),)
        )

    patient_id = sender.patient_id
    if patient_id is None:
        if isinstance(reply, sms_parser.Stop | sms_parser.Start):
            return Outcome("unknown_phone" if not sender.is_care_team else "care_team_other", None)
        if sender.is_care_team:
            return Outcome("care_team_other", texts.care_team_hint())
        return Outcome("unknown_phone", texts.unknown_phone())

    lang = sender.language
    # A patient who opted out gets no replies but HELP's (carriers require HELP to answer).
    quiet = not sender.sms_consent

    if isinstance(reply, sms_parser.Stop | sms_parser.Start):
        consent = isinstance(reply, sms_parser.Start)
        changed = _from_text(
            ConsentChanged,
            event_id,
            now,
            ConsentChangedPayload(sms_consent=consent, reason="start" if consent else "stop"),
            patient_id,
        )
        # Twilio confirms STOP itself (and refuses to deliver anything after it).
        confirm = texts.started(lang) if consent else None
        return Outcome(
            "start" if consent else "stop",
            confirm,
            (Publish(PATIENT_EVENTS, changed),),
            consent=consent,
        )
    if isinstance(reply, sms_parser.Help):
        return Outcome("help", texts.help(lang))
    if isinstance(reply, sms_parser.Report):
        report = _from_text(
            SymptomReported,
            event_id,
            now,
            SymptomReportedPayload(severity=reply.severity, note=reply.note, channel="sms"),
            patient_id,
        )
        return Outcome(
            "report",
            None if quiet else texts.thanks(lang, reply.severity),
            (Publish(PATIENT_EVENTS, report),),
            severity=reply.severity,
            ask="answered" if sender.grade_asked_at is not None else None,
        )
    # Unclear (or an ACK from a phone that is not on any care team): ask for a number once.
    asked = sender.asked_recently(now)
    ask: Literal["asked", "answered"] | None
    if quiet:
        answer, ask = None, None
    elif asked:
        answer, ask = texts.thanks(lang, None), None
    else:
        answer, ask = texts.clarify(lang), "asked"
    note = reply.note if isinstance(reply, sms_parser.Unclear) else None
    if note:
        # Keep the words without a grade: a red flag must not wait for a reply.
        noted = _from_text(
            SymptomReported,
            event_id,
            now,
            SymptomReportedPayload(severity=None, note=note, channel="sms"),
            patient_id,
        )
        return Outcome("unclear", answer, (Publish(PATIENT_EVENTS, noted),), ask=ask)
    if asked:
        answer = None  # an empty text after the ask: nothing to record, nothing to say
    return Outcome("unclear", answer, ask=ask)
