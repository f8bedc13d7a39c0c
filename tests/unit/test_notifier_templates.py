"""Every template renders in both languages, with all, some or none of the facts, and fits
two SMS segments."""

from __future__ import annotations

import pytest

from notifier.templates import (
    FIRST_TEXT_FOOTER,
    LANGUAGES,
    TEMPLATES,
    is_gsm7,
    render,
    segments,
    with_first_text_footer,
)
from shared.events import NotificationKind
from shared.notification_kinds import KINDS, PAGE_KINDS, PATIENT_KINDS

FULL_FACTS: dict[str, str | int | None] = {
    "day": 196,
    "severity": 4,
    "baseline_severity": 3,
    "rule": "worsening.above_baseline",
    "alert_kind": "worsening",
    "evidence": "day 190: 3, day 196: 4",
    "patient_id": "p-001",
}
#: A clinic name longer than most.
CLINICS = ("the MVD clinic", "Riverside Neurosurgery Clinic")


def test_every_kind_in_the_contract_has_a_template() -> None:
    kinds = set(NotificationKind.__args__)  # type: ignore[attr-defined]
    assert set(TEMPLATES) == kinds == set(PATIENT_KINDS) | set(PAGE_KINDS)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_of_the_table_renders_in_every_language(
    kind: NotificationKind, language: str
) -> None:
    body = render(kind, language, FULL_FACTS, CLINICS[0], ack_code="ABC123")
    assert body.startswith(CLINICS[0])
    if KINDS[kind].pages:
        assert ("URGENTE" if language == "es" else "URGENT") in body


@pytest.mark.parametrize("clinic", CLINICS)
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", PATIENT_KINDS)
def test_patient_texts_fit_two_segments_even_with_the_footer(
    kind: str, language: str, clinic: str
) -> None:
    for facts in (FULL_FACTS, {**FULL_FACTS, "alert_kind": "red_flag"}, {}):
        body = render(kind, language, facts, clinic)
        first = with_first_text_footer(body, language)
        assert body.startswith(clinic + ":")
        assert first.endswith(FIRST_TEXT_FOOTER[language])
        assert "STOP" in first
        assert "HELP" in first
        assert "STOP" not in body  # only the first text carries it
        assert is_gsm7(first), "stay in GSM-7 so two segments hold 306 characters"
        assert segments(first) <= 2, (len(first), first)
        assert "{" not in first
        assert "None" not in first


@pytest.mark.parametrize("clinic", CLINICS)
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", PAGE_KINDS)
def test_pages_carry_rule_evidence_and_ack_code(kind: str, language: str, clinic: str) -> None:
    body = render(kind, language, FULL_FACTS, clinic, ack_code="7KQ2")
    assert body.startswith(clinic)
    assert "worsening.above_baseline" in body
    assert "day 190: 3, day 196: 4" in body
    assert "p-001" in body
    assert "196" in body
    assert body.endswith("ACK 7KQ2")
    assert segments(body) <= 2, (len(body), body)
    urgent = kind in {"worsening", "red_flag"}
    assert ("URGENT" in body) == urgent


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", PAGE_KINDS)
def test_pages_render_whatever_facts_are_there(kind: str, language: str) -> None:
    bare = render(kind, language, {}, "C")
    assert bare.startswith("C ")
    assert "None" not in bare
    assert "{" not in bare
    for key in FULL_FACTS:
        partial = render(kind, language, {key: FULL_FACTS[key]}, "C")
        assert "None" not in partial
    assert "Reply ACK" not in render(kind, "en", {"day": None, "severity": "  "}, "C")
    assert "day 5" in render(kind, "en", {"day": 5}, "C")
    assert "grade 2" in render(kind, "en", {"severity": 2}, "C")
    assert "pre-op grade 3" in render(kind, "en", {"baseline_severity": 3}, "C")


def test_escalation_reminders_say_so() -> None:
    assert "reminder 2" in render("worsening", "en", FULL_FACTS, "C", escalation_step=2)
    assert "aviso 1" in render("red_flag", "es", FULL_FACTS, "C", escalation_step=1)
    assert "reminder" not in render("worsening", "en", FULL_FACTS, "C")


def test_reassurance_says_what_the_rules_page_says() -> None:
    en = render("reassurance", "en", {}, "C")
    for phrase in ("common", "3 in 10", "not mean the surgery failed", "3 and 6 months"):
        assert phrase in en
    assert "Call us if it gets worse" in en
    es = render("reassurance", "es", {}, "C")
    for phrase in ("frecuente", "3 de cada 10", "no significa", "3 y 6 meses", "Llame si"):
        assert phrase in es


def test_checkin_prompt_asks_for_a_grade_with_the_scale() -> None:
    for language in LANGUAGES:
        body = render("checkin_prompt", language, {}, "C")
        for grade in "01234":
            assert f"{grade} " in body


def test_red_flag_care_team_notified_points_to_emergency_services() -> None:
    assert "911" in render("care_team_notified", "en", {"alert_kind": "red_flag"}, "C")
    assert "911" in render("care_team_notified", "es", {"alert_kind": "red_flag"}, "C")
    assert "911" not in render("care_team_notified", "en", {"alert_kind": "worsening"}, "C")


def test_unknown_language_falls_back_to_english_unknown_kind_raises() -> None:
    assert render("reassurance", "fr", {}, "C") == render("reassurance", "en", {}, "C")
    with pytest.raises(KeyError):
        render("nope", "en", {}, "C")


def test_footer_is_added_once() -> None:
    once = with_first_text_footer("hi", "en")
    assert with_first_text_footer(once, "en") == once


@pytest.mark.parametrize(
    ("body", "count"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters count twice
        ("€" * 81, 2),
        ("ñé¿¡ü" * 32, 1),  # GSM-7 basic
        ("á" * 70, 1),  # not GSM-7: UCS-2
        ("á" * 71, 2),
        ("á" * 134, 2),
        ("á" * 135, 3),
        ("😀" * 35, 1),  # surrogate pairs count twice
        ("😀" * 36, 2),
    ],
)
def test_segments(body: str, count: int) -> None:
    assert segments(body) == count
