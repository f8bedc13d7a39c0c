"""Per-patient sealing of patient fields (shared.crypto) and the assessor's sealed state."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from assessor import erasure as assessor_erasure
from shared.crypto import (
    EventCodec,
    KeyUnavailable,
    SealError,
    new_data_key,
    open_value,
    parse_master_key,
    seal_value,
    unwrap_key,
    wrap_key,
)
from shared.events import (
    CareTeam,
    PatientEnrolled,
    PatientEnrolledPayload,
    SendNotification,
    SendNotificationPayload,
    SymptomReported,
    SymptomReportedPayload,
    encode_event,
)

NOW = dt.datetime(2026, 3, 9, 15, tzinfo=dt.UTC)
PHONE = "+15557654321"
NOTE = "left eye twitching, zebra-unique-note"


class Keys:
    """An in-memory keyring (the port ``shared.crypto.Keyring``)."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.fetched: list[str] = []

    async def key(self, patient_id: str) -> bytes | None:
        self.fetched.append(patient_id)
        return self.keys.get(patient_id)

    def cached(self, patient_id: str) -> bytes | None:
        return self.keys.get(patient_id)

    def forget(self, patient_id: str) -> None:
        self.keys.pop(patient_id, None)

    async def prefetch(self, patient_ids: set[str]) -> None:
        return None


def enrolled(patient_id: str = "p-1") -> PatientEnrolled:
    return PatientEnrolled(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        recorded_at=NOW,
        patient_id=patient_id,
        source="api",
        payload=PatientEnrolledPayload(
            phone=PHONE,
            timezone="America/Chicago",
            language="en",
            surgery_date=dt.date(2026, 3, 2),
            baseline_severity=3,
            care_team=CareTeam(on_call="+15550001111"),
            sms_consent=True,
        ),
    )


def reported(patient_id: str = "p-1") -> SymptomReported:
    return SymptomReported(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        recorded_at=NOW,
        patient_id=patient_id,
        source="api",
        payload=SymptomReportedPayload(severity=2, note=NOTE, channel="app"),
    )


@pytest.fixture
def keys() -> Keys:
    k = Keys()
    k.keys["p-1"] = new_data_key()
    k.keys["p-2"] = new_data_key()
    return k


async def test_patient_fields_are_sealed_on_the_wire_and_opened_back(keys: Keys) -> None:
    codec = EventCodec(keys)
    for event in (enrolled(), reported()):
        wire = await codec.encode(event)
        assert PHONE.encode() not in wire
        assert NOTE.encode() not in wire
        assert await codec.decode(wire) == event


async def test_decision_phone_and_facts_are_sealed(keys: Keys) -> None:
    decision = SendNotification(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        recorded_at=NOW,
        patient_id="p-1",
        source="assessor",
        payload=SendNotificationPayload(
            dedupe_key="p-1:red_flag:x",
            kind="red_flag",
            audience="care_team",
            urgency="urgent",
            to="+15550001111",
            language="en",
            timezone="America/Chicago",
            due_at=NOW,
            facts={"excerpt": NOTE, "patient_id": "p-1"},
        ),
    )
    codec = EventCodec(keys)
    wire = await codec.encode(decision)
    assert NOTE.encode() not in wire
    assert b"+15550001111" not in wire
    assert await codec.decode(wire) == decision


async def test_an_erased_patient_without_a_key_is_unreadable_not_invalid(keys: Keys) -> None:
    codec = EventCodec(keys)
    wire = await codec.encode(reported())
    keys.forget("p-1")
    with pytest.raises(KeyUnavailable):
        await codec.decode(wire)
    with pytest.raises(KeyUnavailable):
        await codec.encode(reported())


async def test_a_sealed_value_moved_to_another_patient_or_field_does_not_open(keys: Keys) -> None:
    codec = EventCodec(keys)
    doc = json.loads(await codec.encode(reported("p-1")))
    doc["patient_id"] = "p-2"
    with pytest.raises(SealError):
        await codec.decode(json.dumps(doc))
    token = seal_value(keys.keys["p-1"], "p-1", "symptom.reported.note", NOTE)
    with pytest.raises(SealError):
        open_value(keys.keys["p-1"], "p-1", "patient.enrolled.phone", token)


async def test_plain_events_need_no_key(keys: Keys) -> None:
    codec = EventCodec(keys)
    event = reported()
    assert await codec.decode(encode_event(event)) == event  # written before encryption
    assert keys.fetched == []


def test_key_wrapping_is_bound_to_the_patient_and_rotates() -> None:
    old, new = new_data_key(), new_data_key()
    data_key = new_data_key()
    wrapped = wrap_key(old, "p-1", data_key)
    assert unwrap_key(old, "p-1", wrapped) == data_key
    with pytest.raises(SealError):
        unwrap_key(old, "p-2", wrapped)
    with pytest.raises(SealError):
        unwrap_key(new, "p-1", wrapped)
    rewrapped = wrap_key(new, "p-1", unwrap_key(old, "p-1", wrapped))
    assert unwrap_key(new, "p-1", rewrapped) == data_key


@pytest.mark.parametrize("text", ["not base64!", "c2hvcnQ="])
def test_master_key_must_be_32_bytes_of_base64(text: str) -> None:
    with pytest.raises(ValueError, match="MASTER_KEY"):
        parse_master_key(text)


def test_assessor_state_is_sealed_with_its_due_time_beside_it(keys: Keys) -> None:
    state = json.dumps({"patient_id": "p-1", "phone": PHONE, "note": NOTE}).encode()
    due = dt.datetime(2026, 3, 10, 15, tzinfo=dt.UTC)
    stored = assessor_erasure.seal_state(keys.keys["p-1"], "p-1", state, due)
    assert PHONE.encode() not in stored
    assert NOTE.encode() not in stored
    assert assessor_erasure.sealed_due(stored) == (True, due)
    assert assessor_erasure.open_state(keys.keys["p-1"], "p-1", stored) == state
    with pytest.raises(SealError):
        assessor_erasure.open_state(keys.keys["p-2"], "p-1", stored)
    assert assessor_erasure.sealed_due(state) == (False, None)
