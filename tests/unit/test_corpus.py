"""The labelled free-text corpus (tests/corpus/): the issue's thresholds, as a test.

``make corpus`` prints the same figures with every miss; this test fails on the same
conditions so that ``make unit`` alone cannot pass with a regression in free text."""

from __future__ import annotations

import pytest

from assessor.domain.redflags import RED_FLAGS
from tools import corpus

SIZES = {"en": 400, "es": 300}


@pytest.mark.parametrize("language", corpus.LANGUAGES)
def test_the_corpus_is_large_and_covers_every_category(language: str) -> None:
    items = corpus.load(language)
    assert len(items) >= SIZES[language]
    flagged = {flag for item in items for flag in item["flags"]}
    assert flagged == set(RED_FLAGS)
    tags = {tag for item in items for tag in item["tags"]}
    for needed in (
        "paraphrase",
        "misspelling",
        "negated",
        "negation_trap",
        "hedge",
        "grade",
        "unclear",
        "keyword",
        "emoji",
        "caps",
        "long",
        "benign",
    ):
        assert needed in tags, needed


@pytest.mark.parametrize("language", corpus.LANGUAGES)
def test_red_flags_and_grades_meet_the_thresholds(language: str) -> None:
    report = corpus.evaluate(language)
    assert report.failures() == [], "\n".join(report.misses)
    assert report.recall == 1.0
    assert report.false_flag_rate <= 0.02
    assert report.quiet >= 50  # enough clearly negated or benign texts to measure it


def test_a_missed_flag_fails_the_thresholds() -> None:
    report = corpus.Report("xx")
    report.tp["fever"] = 9
    report.fn["fever"] = 1
    assert report.failures() == ["xx: red-flag recall 90.0% < 100 %"]
