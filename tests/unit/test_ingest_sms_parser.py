"""The SMS reply parser: a table of what texts mean, and properties over any text."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest.sms_parser import (
    HELP_WORDS,
    MAX_NOTE,
    START_WORDS,
    STOP_WORDS,
    Ack,
    Help,
    Report,
    Start,
    Stop,
    Unclear,
    parse_reply,
)

AMBIGUOUS = Unclear("ambiguous")
NO_GRADE = Unclear("no_grade")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # bare digits, lightly decorated
        ("2", Report(2, None)),
        (" 2 ", Report(2, None)),
        ("2!", Report(2, None)),
        ("0", Report(0, None)),
        ("4.", Report(4, None)),
        ("２", Report(2, None)),  # full-width digit from a phone keyboard
        ("I'd say 2", Report(2, "I'd say 2")),
        ("2/4", Report(2, "2/4")),
        ("3 out of 4", Report(3, "3 out of 4")),
        ("2, left eye still twitching", Report(2, "2, left eye still twitching")),
        ("3 y me duele la cara", Report(3, "3 y me duele la cara")),
        # words, English and Spanish
        ("none", Report(0, None)),
        ("No twitching", Report(0, None)),
        ("ninguno", Report(0, None)),
        ("Nada", Report(0, None)),
        ("very mild", Report(1, None)),
        ("mild", Report(2, None)),
        ("Leve", Report(2, None)),
        ("moderate", Report(3, None)),
        ("moderado", Report(3, None)),
        ("severe", Report(4, None)),
        ("Severo", Report(4, None)),
        ("grave", Report(4, None)),
        ("two", Report(2, None)),
        ("dos", Report(2, None)),
        # grades inside sentences (rules page, "Free text": one grade-like token anywhere)
        ("two, worse than yesterday", Report(2, "two, worse than yesterday")),
        ("four, much worse", Report(4, "four, much worse")),
        ("tres, peor que ayer", Report(3, "tres, peor que ayer")),
        ("about a 3", Report(3, "about a 3")),
        ("3/4", Report(3, "3/4")),
        ("I'd say one", Report(1, "I'd say one")),
        ("none today", Report(0, "none today")),
        ("3 spasms this morning, overall 2", Report(2, "3 spasms this morning, overall 2")),
        ("2 days ago it was 4", Report(4, "2 days ago it was 4")),  # "2 days" is a count
        ("39 de temperatura, tic 1", Report(1, "39 de temperatura, tic 1")),
        ("fever of 38.5, twitching 2", Report(2, "fever of 38.5, twitching 2")),
        ("on Dec 3 it was 2", Report(2, "on Dec 3 it was 2")),
        ("el 3 de diciembre fue 2", Report(2, "el 3 de diciembre fue 2")),
        ("a las 3 de la tarde era 1", Report(1, "a las 3 de la tarde era 1")),
        ("cero espasmos", Report(0, "cero espasmos")),
        # no grade-like token (scale words count only as the whole reply): unclear
        ("mild today, better than last week", NO_GRADE),
        ("worse", NO_GRADE),
        ("peor", NO_GRADE),
        ("better", NO_GRADE),
        ("my face is drooping", NO_GRADE),
        ("fever for 2 days", NO_GRADE),
        ("severe headache", NO_GRADE),  # grades the headache
        ("dolor de cabeza severo", NO_GRADE),
        ("at 2:30 it was bad", NO_GRADE),
        ("3 spasms today", NO_GRADE),
        ("39 de temperatura", NO_GRADE),
        ("two days ago", NO_GRADE),
        ("I can barely hear on the left", NO_GRADE),
        # ambiguous: several grade-like tokens, a range, another scale, a malformed number
        ("two or three", AMBIGUOUS),
        ("four or five", AMBIGUOUS),
        ("between 1 and 2", AMBIGUOUS),
        ("entre 1 y 2", AMBIGUOUS),
        ("1 a 2", AMBIGUOUS),
        ("it was 2 but now 3", AMBIGUOUS),
        ("2 or 3", AMBIGUOUS),
        ("2-3", AMBIGUOUS),
        ("5", AMBIGUOUS),
        ("10/10", AMBIGUOUS),
        ("7 out of 10", AMBIGUOUS),
        ("2.5", AMBIGUOUS),
        ("mild to moderate", NO_GRADE),
        ("not severe", NO_GRADE),
        ("no es grave", NO_GRADE),
        ("", Unclear("empty")),
        ("  \n ", Unclear("empty")),
        ("?!", Unclear("empty")),
        # keywords
        ("STOP", Stop()),
        ("stop.", Stop()),
        ("Unsubscribe", Stop()),
        ("CANCEL", Stop()),
        ("end", Stop()),
        ("quit", Stop()),
        ("stopall", Stop()),
        ("START", Start()),
        ("yes", Start()),
        ("unstop", Start()),
        ("HELP", Help()),
        ("info", Help()),
        ("ACK 7QX2", Ack("7QX2")),
        ("ack abc123", Ack("ABC123")),
        ("Ack: 12345!", Ack("12345")),
        # a keyword inside a sentence is not a keyword
        ("please stop the twitching, 3", Report(3, "please stop the twitching, 3")),
    ],
)
def test_table(body: str, expected: object) -> None:
    assert parse_reply(body) == expected


@pytest.mark.parametrize(
    ("opt_out_type", "expected"),
    [("STOP", Stop()), ("START", Start()), ("HELP", Help()), ("stop", Stop())],
)
def test_twilio_opt_out_type_wins_over_the_body(opt_out_type: str, expected: object) -> None:
    assert parse_reply("2", opt_out_type) == expected


def test_unknown_opt_out_type_is_ignored() -> None:
    assert parse_reply("2", "SOMETHING") == Report(2, None)


def test_note_is_truncated_to_the_contract_limit() -> None:
    result = parse_reply("3 " + "x" * 5000)
    assert isinstance(result, Report)
    assert result.severity == 3
    assert result.note is not None
    assert len(result.note) == MAX_NOTE


def test_a_huge_number_does_not_crash() -> None:
    assert parse_reply("9" * 6000) == AMBIGUOUS


# --- properties ---------------------------------------------------------------------------

decoration = st.sampled_from(["", " ", "  ", "\n", "\t"])
punctuation = st.sampled_from(["", ".", "!", "!!", "?"])


@settings(max_examples=300)
@given(st.text(max_size=300), st.one_of(st.none(), st.text(max_size=10)))
@example("9" * 5000, None)
@example("ack ", None)
@example("\x00", "STOP")
def test_never_crashes_and_answers_in_range(body: str, opt_out_type: str | None) -> None:
    result = parse_reply(body, opt_out_type)
    assert isinstance(result, Stop | Start | Help | Ack | Report | Unclear)
    if isinstance(result, Report):
        assert result.severity is None or 0 <= result.severity <= 4
        assert result.severity is not None or result.note
        assert result.note is None or 0 < len(result.note) <= MAX_NOTE
    if isinstance(result, Ack):
        assert result.code.isalnum()
        assert result.code.isascii()
        assert result.code == result.code.upper()
        assert 4 <= len(result.code) <= 12


@given(st.integers(0, 4), decoration, decoration, punctuation)
def test_digits_round_trip(grade: int, before: str, after: str, punct: str) -> None:
    assert parse_reply(f"{before}{grade}{punct}{after}") == Report(grade, None)


@given(st.sampled_from(sorted(STOP_WORDS)), decoration, decoration, punctuation, st.booleans())
def test_stop_words_always_opt_out(
    word: str, before: str, after: str, punct: str, upper: bool
) -> None:
    text = word.upper() if upper else word.capitalize()
    assert parse_reply(f"{before}{text}{punct}{after}") == Stop()


@given(st.sampled_from(sorted(START_WORDS)), decoration, st.booleans())
def test_start_words_always_opt_in(word: str, around: str, upper: bool) -> None:
    assert parse_reply(around + (word.upper() if upper else word) + around) == Start()


@given(st.sampled_from(sorted(HELP_WORDS)), decoration, st.booleans())
def test_help_words_always_help(word: str, around: str, upper: bool) -> None:
    assert parse_reply(around + (word.upper() if upper else word) + around) == Help()


@given(st.text(max_size=100))
def test_opt_out_type_stop_always_opts_out(body: str) -> None:
    assert parse_reply(body, "STOP") == Stop()


@given(
    st.integers(0, 4),
    st.integers(0, 4),
    st.sampled_from([" or ", " - ", ", ", " and ", " then ", " y ", " o "]),
)
def test_two_different_grades_are_never_recorded(a: int, b: int, joiner: str) -> None:
    result = parse_reply(f"{a}{joiner}{b}")
    if a != b:
        assert result == AMBIGUOUS


SAFE_WORDS = ["eye", "still", "twitching", "today", "the", "cheek", "ojo", "hoy", "after", "lunch"]


@given(st.integers(0, 4), st.lists(st.sampled_from(SAFE_WORDS), min_size=1, max_size=8))
def test_free_text_after_a_grade_is_kept_as_the_note(grade: int, words: list[str]) -> None:
    body = f"{grade} {' '.join(words)}"
    assert parse_reply(body) == Report(grade, body)


@given(st.lists(st.sampled_from(SAFE_WORDS), min_size=1, max_size=8))
def test_text_without_a_grade_is_unclear_and_keeps_its_words(words: list[str]) -> None:
    body = " ".join(words)
    result = parse_reply(body)
    assert result == NO_GRADE
    assert isinstance(result, Unclear)
    assert result.note == body


def test_an_unclear_reply_keeps_its_words_for_the_red_flags() -> None:
    result = parse_reply("fever, 2 or 3")
    assert result == AMBIGUOUS
    assert isinstance(result, Unclear)
    assert result.note == "fever, 2 or 3"


@given(st.integers(5, 10_000))
def test_numbers_above_the_scale_are_ambiguous(value: int) -> None:
    assert parse_reply(str(value)) == AMBIGUOUS


@given(st.text(max_size=200))
def test_deterministic(body: str) -> None:
    assert parse_reply(body) == parse_reply(body)
