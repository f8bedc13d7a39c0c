"""The console's trajectory chart and page helpers: pure functions, no I/O."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from console import chart, views
from console.actions import enrollment_body
from console.pages import conversation
from console.web import local_path


def report(day: int, severity: int | None) -> dict[str, object]:
    return {"event_id": str(uuid.uuid4()), "day": day, "severity": severity,
            "occurred_at": f"2026-03-{day:02d}T10:00:00Z"}  # fmt: skip


def test_points_carry_the_alerts_whose_evidence_names_them() -> None:
    reports = [report(5, 3), report(9, 4), report(12, None)]
    alerts = [
        {"kind": "worsening", "evidence": [reports[1]["event_id"]]},
        {"kind": "red_flag", "evidence": [reports[2]["event_id"]]},
    ]
    pts = chart.points(reports, alerts)
    assert [(p.day, p.severity, p.alerts) for p in pts] == [
        (5, 3, ()),
        (9, 4, ("worsening",)),
        (12, None, ("red_flag",)),
    ]


def test_an_alert_known_to_the_assessor_and_the_projection_marks_its_report_once() -> None:
    reports = [report(12, None)]
    same = {"kind": "red_flag", "evidence": [reports[0]["event_id"]]}
    (pt,) = chart.points(reports, [same, dict(same)])
    assert pt.alerts == ("red_flag",)
    assert chart.svg([pt], 3, 12).count(">red flag</text>") == 1


def test_the_svg_places_each_report_and_labels_what_colour_would_otherwise_tell() -> None:
    reports = [report(5, 3), report(40, 1), report(60, None)]
    alerts = [{"kind": "red_flag", "evidence": [reports[2]["event_id"]]}]
    svg = chart.svg(chart.points(reports, alerts), baseline=3, today=61)
    found = re.findall(r'data-day="(\d+)" data-severity="(\d*)"', svg)
    assert found == [("5", "3"), ("40", "1"), ("60", "")]
    assert "expected delayed-recovery window, days 4–182" in svg
    assert "6 months (day 183)" in svg
    assert "baseline 3" in svg
    assert 'fill="url(#hatch)"' in svg  # a pattern, not a colour
    assert svg.count('class="alert-marker"') == 1
    assert "<title>day 60: words only, no grade; raised red flag</title>" in svg
    # a lower severity is drawn lower: y grows downwards
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert ys[0] < ys[1]


def test_the_svg_escapes_and_widens_for_late_days() -> None:
    svg = chart.svg(chart.points([report(300, 2)], []), baseline=None, today=320)
    assert 'data-day="300"' in svg
    assert "baseline" not in svg
    assert svg.count("<svg") == 1


def test_page_status_prefers_an_acknowledgement() -> None:
    alert: dict[str, object] = {"acknowledged_at": None}
    assert views.page_status(alert, {"status": "sent"}) == "sent"
    assert views.page_status(alert, {"status": "escalated", "escalations": 2}) == (
        "escalated (step 2)"
    )
    assert views.page_status(alert, {"status": "escalated", "acknowledged_at": "x"}) == (
        "acknowledged"
    )
    assert views.page_status(alert, None) == "unknown"
    assert views.page_status({"acknowledged_at": "x"}, None) == "acknowledged"


def test_since_and_day_of() -> None:
    t0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    assert views.since(t0, t0 + dt.timedelta(minutes=5)) == "5 min"
    assert views.since(t0, t0 + dt.timedelta(hours=3, minutes=12)) == "3 h 12 min"
    assert views.since(t0, t0 + dt.timedelta(days=4, hours=2)) == "4 d 2 h"
    # 02:00 UTC on 3 March is still 2 March in Chicago
    at = dt.datetime(2026, 3, 3, 2, tzinfo=dt.UTC)
    assert views.day_of(dt.date(2026, 3, 1), "America/Chicago", at) == 1
    assert views.day_of(None, None, at) is None


def test_only_local_paths_are_redirect_targets() -> None:
    assert local_path("/patients/p-1") == "/patients/p-1"
    for bad in ("//evil.example/", "https://evil.example/", "", None, "/\\evil"):
        assert local_path(bad) == "/"


def test_the_form_becomes_ingest_json_typed_and_without_empty_options() -> None:
    body = enrollment_body({
        "patient_id": " p-1 ", "phone": "+15551230001", "timezone": "America/Chicago",
        "language": "en", "surgery_date": "2026-03-02", "baseline_severity": "3",
        "care_team.on_call": "+15550001111", "care_team.backup": "", "sms_consent": "on",
    })  # fmt: skip
    assert body == {
        "patient_id": "p-1", "phone": "+15551230001", "timezone": "America/Chicago",
        "language": "en", "surgery_date": "2026-03-02", "baseline_severity": 3,
        "care_team": {"on_call": "+15550001111"}, "sms_consent": True,
    }  # fmt: skip
    odd = enrollment_body({"baseline_severity": "three"})
    assert odd["baseline_severity"] == "three"  # ingest judges it, and says so
    assert odd["sms_consent"] is False


def test_the_conversation_interleaves_texts_and_ours_by_time() -> None:
    t = dt.datetime(2026, 3, 5, 10, tzinfo=dt.UTC)
    texts = [
        {"at": t + dt.timedelta(hours=1), "kind": "report", "severity": 2, "note": "better"},
        {"at": t + dt.timedelta(hours=3), "kind": "stop", "severity": None, "note": None},
    ]
    sent = [
        {"audience": "patient", "sent_at": t.isoformat(), "body": "How is it?",
         "status": "delivered", "kind": "checkin_prompt"},
        {"audience": "care_team", "sent_at": t.isoformat(), "body": "PAGE", "status": "sent",
         "kind": "red_flag"},
    ]  # fmt: skip
    convo = conversation(texts, sent)
    assert [(m["direction"], m["body"], m["status"]) for m in convo] == [
        ("out", "How is it?", "delivered"),
        ("in", "2 better", "received"),
        ("in", "STOP", "received"),
    ]


def test_a_texted_note_that_carries_its_grade_is_shown_as_sent() -> None:
    at = dt.datetime(2026, 3, 5, 10, tzinfo=dt.UTC)
    texts = [{"at": at, "kind": "report", "severity": 2, "note": "2 and my face droops"}]
    assert [m["body"] for m in conversation(texts, [])] == ["2 and my face droops"]
