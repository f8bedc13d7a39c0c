"""The free-text corpus: how well the reply parser and the red-flag detector read patients.

``python -m tools.corpus`` (``make corpus``) reads ``tests/corpus/<lang>.jsonl`` — one
labelled text per line: ``text``, ``flags`` (red-flag categories), ``grade`` (0–4 or null),
``unclear``, ``keyword`` (STOP/START/HELP or null), ``tags`` — runs each text through what
production runs (``ingest.sms_parser.parse_reply``, then the red-flag detector on the note
that parse hands the assessor) and prints, per language: precision and recall per red-flag
category, the false-flag rate on the clearly negated and benign texts, grade accuracy, and
every miss. Exit status 1 when a threshold is not met (``THRESHOLDS``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assessor.domain.redflags import RED_FLAGS, red_flags
from ingest import sms_parser

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
LANGUAGES = ("en", "es")

#: The issue's pass condition: every red flag found; at most 2 % of the clearly negated or
#: benign texts flagged; and grades read as the rules page says.
THRESHOLDS = {"recall": 1.0, "false_flag_rate": 0.02, "grade_accuracy": 0.95}
_QUIET_TAGS = frozenset({"negated", "benign"})


@dataclass
class Outcome:
    flags: tuple[str, ...]
    grade: int | None
    unclear: bool
    keyword: str | None


@dataclass
class Report:
    language: str
    texts: int = 0
    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)
    quiet: int = 0  # clearly negated or benign texts (no flag expected)
    quiet_flagged: int = 0
    graded: int = 0  # texts with no keyword: the grade (or unclear) is checked
    graded_right: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        found, expected = sum(self.tp.values()), sum(self.tp.values()) + sum(self.fn.values())
        return found / expected if expected else 1.0

    @property
    def false_flag_rate(self) -> float:
        return self.quiet_flagged / self.quiet if self.quiet else 0.0

    @property
    def grade_accuracy(self) -> float:
        return self.graded_right / self.graded if self.graded else 1.0

    def failures(self) -> list[str]:
        out = []
        if self.recall < THRESHOLDS["recall"]:
            out.append(f"{self.language}: red-flag recall {self.recall:.1%} < 100 %")
        if self.false_flag_rate > THRESHOLDS["false_flag_rate"]:
            out.append(
                f"{self.language}: false flags on negated/benign texts "
                f"{self.false_flag_rate:.1%} > {THRESHOLDS['false_flag_rate']:.0%}"
            )
        if self.grade_accuracy < THRESHOLDS["grade_accuracy"]:
            out.append(
                f"{self.language}: grade accuracy {self.grade_accuracy:.1%} < "
                f"{THRESHOLDS['grade_accuracy']:.0%}"
            )
        return out


def read(text: str) -> Outcome:
    """What production makes of one inbound text."""
    reply = sms_parser.parse_reply(text)
    if isinstance(reply, sms_parser.Stop):
        return Outcome((), None, False, "STOP")
    if isinstance(reply, sms_parser.Start):
        return Outcome((), None, False, "START")
    if isinstance(reply, sms_parser.Help):
        return Outcome((), None, False, "HELP")
    if isinstance(reply, sms_parser.Report):
        return Outcome(red_flags(reply.note), reply.severity, reply.severity is None, None)
    if isinstance(reply, sms_parser.Unclear):
        return Outcome(red_flags(reply.note), None, True, None)
    return Outcome((), None, True, None)  # an ACK from a patient's phone: asked again


def load(language: str) -> list[dict[str, Any]]:
    path = CORPUS / f"{language}.jsonl"
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        item = json.loads(line)
        unknown = set(item["flags"]) - set(RED_FLAGS)
        if unknown or not isinstance(item["text"], str):
            raise ValueError(f"{path.name}:{n}: bad item (flags {sorted(unknown)})")
        items.append(item)
    return items


def evaluate(language: str) -> Report:
    report = Report(language)
    for item in load(language):
        report.texts += 1
        seen = read(item["text"])
        expected = set(item["flags"])
        got = set(seen.flags)
        for flag in expected & got:
            report.tp[flag] += 1
        for flag in got - expected:
            report.fp[flag] += 1
        for flag in expected - got:
            report.fn[flag] += 1
        text = json.dumps(item["text"], ensure_ascii=False)
        if expected != got:
            report.misses.append(f"flags   {text}: expected {sorted(expected)}, got {sorted(got)}")
        if not expected and _QUIET_TAGS & set(item["tags"]):
            report.quiet += 1
            report.quiet_flagged += bool(got)
        if item["keyword"] is not None or seen.keyword is not None:
            if item["keyword"] != seen.keyword:
                report.misses.append(
                    f"keyword {text}: expected {item['keyword']}, got {seen.keyword}"
                )
            if item["keyword"] is not None:
                continue
        report.graded += 1
        if (seen.grade, seen.unclear) == (item["grade"], item["unclear"]):
            report.graded_right += 1
        else:
            want = "unclear" if item["unclear"] else item["grade"]
            have = "unclear" if seen.unclear else seen.grade
            report.misses.append(f"grade   {text}: expected {want}, got {have}")
    return report


def render(report: Report) -> str:
    lines = [f"== {report.language}: {report.texts} texts"]
    lines.append(f"   {'category':<20} {'precision':>9} {'recall':>7}  (tp fp fn)")
    for flag in RED_FLAGS:
        tp, fp, fn = report.tp[flag], report.fp[flag], report.fn[flag]
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        lines.append(f"   {flag:<20} {precision:>9.1%} {recall:>7.1%}  ({tp} {fp} {fn})")
    lines.append(f"   red-flag recall {report.recall:.1%}")
    lines.append(
        f"   false flags on clearly negated/benign texts: {report.quiet_flagged}/{report.quiet}"
        f" = {report.false_flag_rate:.1%}"
    )
    lines.append(
        f"   grade accuracy (grade or unclear): {report.graded_right}/{report.graded}"
        f" = {report.grade_accuracy:.1%}"
    )
    lines.extend(f"   miss: {m}" for m in report.misses)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("languages", nargs="*", default=list(LANGUAGES))
    args = parser.parse_args()
    failures: list[str] = []
    for language in args.languages:
        report = evaluate(language)
        print(render(report))
        failures.extend(report.failures())
    for f in failures:
        print(f"FAIL {f}")
    if not failures:
        print("corpus: all thresholds met")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
