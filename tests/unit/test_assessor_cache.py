"""The assessor's speed-up never changes an answer: the decoded-state cache; and the graded
history follows the profile and the reports (it is computed, never memoized)."""

from __future__ import annotations

import datetime as dt
import uuid

from assessor.cache import DecodedStates
from assessor.domain import PatientState, Report
from assessor.domain.phases import graded as _graded
from shared.events import PatientEnrolledPayload

T0 = dt.datetime(2026, 3, 1, 15, tzinfo=dt.UTC)


def profile(surgery: dt.date, zone: str = "America/Chicago") -> PatientEnrolledPayload:
    return PatientEnrolledPayload.model_validate(
        {
            "phone": "+15551230001",
            "timezone": zone,
            "language": "en",
            "surgery_date": surgery.isoformat(),
            "baseline_severity": 3,
            "care_team": {"on_call": "+15550001111"},
            "sms_consent": True,
        }
    )


def state(pid: str, severity: int) -> PatientState:
    report = Report(event_id=uuid.uuid4(), occurred_at=T0, severity=severity)
    return PatientState(patient_id=pid, reports=(report,))


def test_cache_answers_only_for_the_very_bytes_it_decoded() -> None:
    cache = DecodedStates(capacity=10)
    raw = state("p1", 2).model_dump_json().encode()
    first = cache.get("p1", raw)
    assert cache.get("p1", raw) is first  # same bytes object: served from the cache
    # Equal content in a new bytes object (a changelog recovery, another writer): decoded anew.
    again = bytes(bytearray(raw))
    assert cache.get("p1", again) is not first
    assert cache.get("p1", again) == first
    newer = state("p1", 4)
    newer_raw = newer.model_dump_json().encode()
    assert cache.get("p1", newer_raw).reports[0].severity == 4


def test_cache_put_then_get_and_eviction() -> None:
    cache = DecodedStates(capacity=2)
    entries = {}
    for pid in ("a", "b", "c"):
        s = state(pid, 1)
        raw = s.model_dump_json().encode()
        cache.put(pid, raw, s)
        entries[pid] = (raw, s)
    assert cache.get("c", entries["c"][0]) is entries["c"][1]
    assert cache.get("b", entries["b"][0]) is entries["b"][1]
    # "a" was evicted (capacity 2): decoded again, equal but not the same object.
    decoded = cache.get("a", entries["a"][0])
    assert decoded == entries["a"][1]
    assert decoded is not entries["a"][1]


def test_cache_of_zero_capacity_still_decodes() -> None:
    cache = DecodedStates(capacity=0)
    s = state("p", 3)
    raw = s.model_dump_json().encode()
    cache.put("p", raw, s)
    assert cache.get("p", raw) == s


def test_graded_memo_follows_the_profile_and_the_reports() -> None:
    s = state("p", 2)
    chicago = profile(dt.date(2026, 3, 1))
    tokyo = profile(dt.date(2026, 3, 1), "Asia/Tokyo")
    # 15:00 UTC on Mar 1 is Mar 1 in Chicago (day 0) and Mar 2 in Tokyo (day 1).
    assert [g.day for g in _graded(s.reports, chicago)] == [0]
    assert [g.day for g in _graded(s.reports, tokyo)] == [1]
    assert [g.day for g in _graded(s.reports, chicago)] == [0]
    more = (
        *s.reports,
        Report(event_id=uuid.uuid4(), occurred_at=T0 + dt.timedelta(days=3), severity=1),
    )
    assert [g.day for g in _graded(more, chicago)] == [0, 3]
    # The answer is a fresh list: a caller changing it cannot change the memo.
    first = _graded(more, chicago)
    first.clear()
    assert len(_graded(more, chicago)) == 2
