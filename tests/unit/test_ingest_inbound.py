"""What ingest does with one inbound text (the pure decision behind the webhook)."""

from __future__ import annotations

import datetime as dt

from ingest.inbound import InboundText, Sender, Texts, decide, event_id_for
from shared.events import AckReceived, ConsentChanged, SymptomReported
from shared.topics import PATIENT_EVENTS, PROVIDER_EVENTS

NOW = dt.datetime(2026, 3, 9, 18, 30, tzinfo=dt.UTC)
SID = "SM" + "a" * 32
PATIENT = Sender(patient_id="p-001", language="en", sms_consent=True)
TEXTS = Texts(clinic_name="Test Clinic")


def text(body: str, opt_out_type: str | None = None) -> InboundText:
    return InboundText(SID, "+15551230001", body, opt_out_type)


def test_a_grade_becomes_a_symptom_report_stamped_with_the_clock() -> None:
    out = decide(text("2"), PATIENT, NOW, TEXTS)
    assert out.label == "report"
    [item] = out.publish
    assert item.topic == PATIENT_EVENTS
    assert item.key is None  # keyed by patient_id
    event = item.event
    assert isinstance(event, SymptomReported)
    assert event.patient_id == "p-001"
    assert event.source == "sms"
    assert event.payload.channel == "sms"
    assert event.payload.severity == 2
    assert event.payload.note is None
    assert event.occurred_at == NOW
    assert event.event_id == event_id_for(SID)
    assert out.reply is not None
    assert "2" in out.reply


def test_the_event_id_is_the_same_for_a_replayed_sid() -> None:
    first = decide(text("3"), PATIENT, NOW, TEXTS)
    again = decide(text("3"), PATIENT, NOW + dt.timedelta(minutes=5), TEXTS)
    assert first.publish[0].event.event_id == again.publish[0].event.event_id


def test_free_text_reaches_the_assessor_as_a_note() -> None:
    out = decide(text("my face is drooping and I have a fever"), PATIENT, NOW, TEXTS)
    event = out.publish[0].event
    assert isinstance(event, SymptomReported)
    assert event.payload.severity is None
    assert event.payload.note == "my face is drooping and I have a fever"


def test_stop_publishes_consent_off_and_sends_no_reply() -> None:
    for out in (
        decide(text("STOP"), PATIENT, NOW, TEXTS),
        decide(text("anything", "STOP"), PATIENT, NOW, TEXTS),
    ):
        assert out.label == "stop"
        assert out.consent is False
        assert out.reply is None  # Twilio confirms STOP itself
        [item] = out.publish
        assert item.topic == PATIENT_EVENTS
        assert isinstance(item.event, ConsentChanged)
        assert item.event.payload.sms_consent is False
        assert item.event.payload.reason == "stop"


def test_start_publishes_consent_on() -> None:
    out = decide(text("START"), PATIENT, NOW, TEXTS)
    event = out.publish[0].event
    assert isinstance(event, ConsentChanged)
    assert event.payload.sms_consent is True
    assert event.payload.reason == "start"
    assert out.consent is True


def test_help_answers_with_the_clinic_text_and_publishes_nothing() -> None:
    out = decide(text("HELP"), PATIENT, NOW, TEXTS)
    assert out.publish == ()
    assert out.reply is not None
    assert "Test Clinic" in out.reply
    spanish = decide(text("help"), Sender(patient_id="p-1", language="es"), NOW, TEXTS)
    assert spanish.reply is not None
    assert "Responda" in spanish.reply


def test_an_ambiguous_reply_asks_again_and_keeps_the_words_without_a_grade() -> None:
    out = decide(text("fever, 2 or 3"), PATIENT, NOW, TEXTS)
    assert out.label == "unclear"
    [item] = out.publish
    assert isinstance(item.event, SymptomReported)
    assert item.event.payload.severity is None  # not recorded as a grade
    assert item.event.payload.note == "fever, 2 or 3"  # but a red flag still reaches the assessor
    assert out.reply is not None
    assert "0" in out.reply
    assert "4" in out.reply


def test_a_reply_without_a_grade_is_kept_as_a_note_and_the_patient_is_asked() -> None:
    out = decide(text("neck stiffness since yesterday"), PATIENT, NOW, TEXTS)
    assert out.label == "unclear"
    assert out.ask == "asked"
    assert out.reply == TEXTS.clarify("en")
    [item] = out.publish
    assert isinstance(item.event, SymptomReported)
    assert item.event.payload.severity is None
    assert item.event.payload.note == "neck stiffness since yesterday"


def test_the_patient_is_asked_once_while_the_ask_is_open() -> None:
    asked = Sender(patient_id="p-001", grade_asked_at=NOW - dt.timedelta(hours=23, minutes=59))
    out = decide(text("much worse"), asked, NOW, TEXTS)
    assert out.label == "unclear"
    assert out.ask is None  # not asked again
    assert out.reply == TEXTS.thanks("en", None)
    [item] = out.publish  # the words still reach the assessor
    assert isinstance(item.event, SymptomReported)
    assert item.event.payload.note == "much worse"
    empty = decide(text("  "), asked, NOW, TEXTS)
    assert (empty.reply, empty.publish, empty.ask) == (None, (), None)


def test_after_a_day_an_unclear_reply_is_a_new_question() -> None:
    stale = Sender(patient_id="p-001", grade_asked_at=NOW - dt.timedelta(hours=24))
    out = decide(text("much worse"), stale, NOW, TEXTS)
    assert out.ask == "asked"
    assert out.reply == TEXTS.clarify("en")


def test_a_grade_answers_the_open_ask() -> None:
    asked = Sender(patient_id="p-001", grade_asked_at=NOW - dt.timedelta(hours=1))
    assert decide(text("four, much worse"), asked, NOW, TEXTS).ask == "answered"
    assert decide(text("4"), PATIENT, NOW, TEXTS).ask is None  # nothing open: no write


def test_an_opted_out_patient_is_not_asked() -> None:
    quiet = Sender(patient_id="p-001", sms_consent=False)
    out = decide(text("much worse"), quiet, NOW, TEXTS)
    assert (out.reply, out.ask) == (None, None)
    assert len(out.publish) == 1


def test_an_opted_out_patient_gets_no_reply_but_the_report_counts() -> None:
    quiet = Sender(patient_id="p-001", sms_consent=False)
    out = decide(text("3"), quiet, NOW, TEXTS)
    assert out.reply is None
    assert len(out.publish) == 1
    assert decide(text("HELP"), quiet, NOW, TEXTS).reply is not None  # HELP always answers


def test_ack_from_a_care_team_phone_goes_to_the_notifier() -> None:
    team = Sender(covers=("p-001", "p-002"))
    out = decide(text("ACK 7qx2"), team, NOW, TEXTS)
    assert out.label == "ack"
    [item] = out.publish
    assert item.topic == PROVIDER_EVENTS
    assert item.key == "7QX2"
    assert isinstance(item.event, AckReceived)
    assert item.event.payload.ack_code == "7QX2"
    assert item.event.payload.from_phone == "+15551230001"
    assert item.event.payload.message_sid == SID
    assert item.event.patient_id is None


def test_ack_from_a_patient_phone_is_not_an_ack() -> None:
    out = decide(text("ACK 7QX2"), PATIENT, NOW, TEXTS)
    assert out.label == "unclear"
    assert out.publish == ()


def test_care_team_phone_without_ack_gets_a_hint() -> None:
    out = decide(text("what is this"), Sender(covers=("p-001",)), NOW, TEXTS)
    assert out.label == "care_team_other"
    assert out.publish == ()
    assert out.reply is not None
    assert "ACK" in out.reply


def test_unknown_phone_gets_a_polite_reply_and_no_event() -> None:
    for body in ("2", "ACK 1234", "hello", "HELP"):
        out = decide(text(body), Sender(), NOW, TEXTS)
        assert out.label == "unknown_phone"
        assert out.publish == ()
        assert out.reply is not None
        assert "not enrolled" in out.reply
    stop = decide(text("STOP"), Sender(), NOW, TEXTS)
    assert stop.publish == ()
    assert stop.reply is None
