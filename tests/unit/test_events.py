import datetime as dt
import uuid

import pytest
from pydantic import ValidationError

from shared.events import (
    ClockAdvanced,
    PatientEnrolled,
    SymptomReported,
    encode_event,
    parse_event,
)
from shared.schemas import rendered

NOW = dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)


def enrolled(**payload_changes: object) -> PatientEnrolled:
    payload = {
        "phone": "+15551230001",
        "timezone": "America/Chicago",
        "language": "en",
        "surgery_date": "2026-03-02",
        "baseline_severity": 3,
        "care_team": {"on_call": "+15550001111"},
        "sms_consent": True,
    } | payload_changes
    return PatientEnrolled.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "occurred_at": NOW,
            "recorded_at": NOW,
            "patient_id": "p-001",
            "source": "api",
            "payload": payload,
        }
    )


def test_round_trip_keeps_every_field() -> None:
    event = enrolled()
    assert parse_event(encode_event(event)) == event


def test_type_selects_the_model() -> None:
    raw = encode_event(
        SymptomReported(
            event_id=uuid.uuid4(),
            occurred_at=dt.datetime(2026, 3, 9, 18, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            recorded_at=NOW,
            patient_id="p-001",
            source="api",
            payload={"severity": 2, "channel": "app"},
        )
    )
    event = parse_event(raw)
    assert isinstance(event, SymptomReported)
    assert event.occurred_at == dt.datetime(2026, 3, 9, 23, 30, tzinfo=dt.UTC)
    assert event.occurred_at.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    "change",
    [
        {"timezone": "Mars/Olympus"},
        {"timezone": "../etc/passwd"},
        {"phone": "5551230001"},
        {"baseline_severity": 0},
        {"language": "fr"},
        {"unexpected": 1},
    ],
)
def test_invalid_payloads_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        enrolled(**change)


def test_events_are_frozen() -> None:
    event = enrolled()
    with pytest.raises(ValidationError):
        event.patient_id = "other"  # type: ignore[misc]


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError):
        ClockAdvanced(
            event_id=uuid.uuid4(),
            occurred_at=dt.datetime(2026, 1, 1),
            recorded_at=NOW,
            source="clock",
            payload={"now": NOW},
        )


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse_event(b'{"type": "patient.deleted", "event_id": "x"}')


def test_exported_schemas_are_current() -> None:
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs" / "schemas"
    expected = rendered()
    on_disk = {p.name: p.read_text() for p in docs.glob("*.json")}
    assert on_disk == expected, "docs/schemas is stale: run `make schemas`"
