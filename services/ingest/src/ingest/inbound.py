"""What ingest does with one inbound text: a pure decision, no I/O.

``decide(text, sender, now, texts)`` → the events to publish, the reply to send back in
TwiML (``None`` = an empty ``<Response/>``) and the new consent to store. The FastAPI
handler looks the sender up, calls this, publishes, and stores the answer for replays.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Literal

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


def event_id_for(message_sid: str) -> uuid.UUID:
    return uuid.uuid5(SMS_NAMESPACE, f"twilio-inbound:{message_sid}")


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
        ack = AckReceived(
            event_id=event_id,
            occurred_at=now,
            recorded_at=now,
            source="sms",
            payload=AckReceivedPayload(
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
        changed = ConsentChanged(
            event_id=event_id,
            occurred_at=now,
            recorded_at=now,
            patient_id=patient_id,
            source="sms",
            payload=ConsentChangedPayload(
                sms_consent=consent, reason="start" if consent else "stop"
            ),
        )
        # Twilio confirms STOP itself (and refuses to deliver anything after it).
        answer = texts.started(lang) if consent else None
        return Outcome(
            "start" if consent else "stop",
            answer,
            (Publish(PATIENT_EVENTS, changed),),
            consent=consent,
        )
    if isinstance(reply, sms_parser.Help):
        return Outcome("help", texts.help(lang))
    if isinstance(reply, sms_parser.Report):
        report = SymptomReported(
            event_id=event_id,
            occurred_at=now,
            recorded_at=now,
            patient_id=patient_id,
            source="sms",
            payload=SymptomReportedPayload(severity=reply.severity, note=reply.note, channel="sms"),
        )
        return Outcome(
            "report",
            None if quiet else texts.thanks(lang, reply.severity),
            (Publish(PATIENT_EVENTS, report),),
            severity=reply.severity,
        )
    if isinstance(reply, sms_parser.Unclear) and reply.note:
        # Ask for the grade again, but keep the words: a red flag must not wait for a reply.
        noted = SymptomReported(
            event_id=event_id,
            occurred_at=now,
            recorded_at=now,
            patient_id=patient_id,
            source="sms",
            payload=SymptomReportedPayload(severity=None, note=reply.note, channel="sms"),
        )
        return Outcome(
            "unclear", None if quiet else texts.clarify(lang), (Publish(PATIENT_EVENTS, noted),)
        )
    # Empty, or an ACK from a phone that is not on any care team: ask, record nothing.
    return Outcome("unclear", None if quiet else texts.clarify(lang))
