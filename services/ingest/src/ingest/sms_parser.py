"""What a text from a phone means: a pure parser, no I/O, no clock, no logging.

``parse_reply(body, opt_out_type)`` returns one of:

- ``Stop`` / ``Start`` / ``Help`` — Twilio's opt-out keywords (the whole message is the
  keyword, any case, surrounding whitespace and punctuation ignored), or Twilio's
  ``OptOutType`` form field, which wins over the body when present;
- ``Ack(code)`` — ``ACK <code>`` (for care-team phones; the caller decides who may ACK);
- ``Report(severity, note)`` — a grade 0–4 and/or free text. Free text is always kept as
  the note (unless the message is nothing but the grade), so red-flag phrases reach the
  assessor; text with no grade is a report with ``severity=None``;
- ``Unclear(reason)`` — empty, or the grade cannot be told for sure ("2 or 3", "5",
  "2 days ago it was 4", "not severe"): the caller asks again and records nothing.

Grades are a digit 0–4 ("2", " 2 ", "2!", "I'd say 2", "2/4", "2 out of 4") or an
unambiguous word in English or Spanish ("none"/"ninguno" = 0, "mild"/"leve" = 2,
"moderate"/"moderado" = 3, "severe"/"severo"/"grave" = 4, …). "worse"/"peor" and
"better"/"mejor" are not grades (the recovery rules say so): they stay free text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

MAX_NOTE = 1000

# Twilio's default opt-out, opt-in and help keywords (Messaging: "Advanced Opt-Out").
STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit"})
START_WORDS = frozenset({"start", "yes", "unstop"})
HELP_WORDS = frozenset({"help", "info"})


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Ack:
    code: str


@dataclass(frozen=True)
class Report:
    severity: int | None
    note: str | None


@dataclass(frozen=True)
class Unclear:
    reason: Literal["empty", "ambiguous"]
    #: The words of an ambiguous reply: kept as a note so that a red flag in it ("fever, 2
    #: or 3") still reaches the assessor, though no grade is recorded.
    note: str | None = field(default=None, compare=False)


Reply = Stop | Start | Help | Ack | Report | Unclear

# --- vocabulary (folded: lower case, accents removed) -----------------------------------

#: Phrases that name a grade, longest first so "very mild" (1) wins over "mild" (2) and
#: "no twitching" (0) is not read as a negated "twitching".
GRADE_PHRASES: tuple[tuple[str, int], ...] = tuple(
    sorted(
        {
            "none": 0,
            "no twitching": 0,
            "no twitch": 0,
            "no twitches": 0,
            "not twitching": 0,
            "no spasm": 0,
            "no spasms": 0,
            "ninguno": 0,
            "ninguna": 0,
            "nada": 0,
            "sin espasmo": 0,
            "sin espasmos": 0,
            "sin tic": 0,
            "sin tics": 0,
            "minimal": 1,
            "slight": 1,
            "slightly": 1,
            "barely": 1,
            "very mild": 1,
            "minimo": 1,
            "minima": 1,
            "muy leve": 1,
            "casi nada": 1,
            "mild": 2,
            "leve": 2,
            "ligero": 2,
            "ligera": 2,
            "moderate": 3,
            "moderado": 3,
            "moderada": 3,
            "severe": 4,
            "severo": 4,
            "severa": 4,
            "grave": 4,
        }.items(),
        key=lambda kv: -len(kv[0]),
    )
)

#: A whole message that is only a number word.
NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "cero": 0,
    "uno": 1,
    "una": 1,
    "dos": 2,
    "tres": 3,
    "cuatro": 4,
}

#: Words that, just before a grade word, negate it ("not severe", "no es grave").
NEGATIONS = frozenset({"not", "no", "never", "isnt", "isn't", "aint", "nunca", "ni", "tampoco"})

#: Symptoms other than twitching: "severe headache" grades the headache, not the spasm.
OTHER_SYMPTOMS = frozenset(
    {
        "headache",
        "headaches",
        "pain",
        "ache",
        "fever",
        "nausea",
        "vomiting",
        "dizziness",
        "dolor",
        "dolores",
        "fiebre",
        "mareo",
        "mareos",
        "vomito",
        "vomitos",
        "nauseas",
        "cabeza",
    }
)

#: A number followed by one of these is a quantity ("2 days", "200 mg"), not a grade.
UNITS = (
    r"(?:times?|days?|weeks?|wks?|months?|mos?|years?|yrs?|hours?|hrs?|"
    r"minutes?|mins?|seconds?|secs?|am|pm|a\.m\.|p\.m\.|mg|ml|kg|lbs?|pills?|"
    r"tablets?|doses?|nights?|mornings?|"
    r"vez|veces|dias?|semanas?|mes|meses|anos?|horas?|minutos?|segundos?|"
    r"pastillas?|tabletas?|dosis|noches?|mananas?)"
)
#: One-letter units only count when attached ("3x", "2d", "4h"): "2 y 3" is Spanish "and".
_UNIT_AFTER = re.compile(r"(?:\s*" + UNITS + r"|[xdwhmsyg])(?![a-z])")
_ORDINAL_AFTER = re.compile(r"(?:st|nd|rd|th|er|ro|do|to|vo|no|mo|o|a)(?![a-z])")
_UNIT_BEFORE = re.compile(
    r"(?:(?<![a-z])(?:day|dia|week|semana|month|mes|year|ano|page|pagina)|#)\s*$"
)
_SCALE_AFTER = re.compile(r"\s*(?:/|out\s+of|of|de|sobre)\s*(\d+)(?![\d.,]\d)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_ACK = re.compile(r"^\s*ack\s*[:#-]?\s*([a-z0-9]{4,12})\s*[.!]*\s*$")
_PUNCT = re.compile(r"[\s.,;:!?¡¿'\"()\[\]*~_-]+")
_WORD = re.compile(r"[a-z']+")
#: Text up to the last sentence break: negation does not reach across punctuation.
_CLAUSE_BREAK = re.compile(r"[.,;:!?¡¿()\n]")


def fold(text: str) -> str:
    """Lower case, accents removed, compatibility forms unified (full-width digits …)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _bare(folded: str) -> str:
    """The message with whitespace and punctuation removed at both ends and collapsed."""
    return _PUNCT.sub(" ", folded).strip()


def parse_reply(body: str, opt_out_type: str | None = None) -> Reply:
    kind = (opt_out_type or "").strip().upper()
    if kind == "STOP":
        return Stop()
    if kind == "START":
        return Start()
    if kind == "HELP":
        return Help()

    folded = fold(body)
    bare = _bare(folded)
    if bare in STOP_WORDS:
        return Stop()
    if bare in START_WORDS:
        return Start()
    if bare in HELP_WORDS:
        return Help()
    ack = _ACK.match(folded)
    if ack:
        return Ack(ack.group(1).upper())
    if not bare:
        return Unclear("empty")
    if bare in NUMBER_WORDS:
        return Report(NUMBER_WORDS[bare], None)

    grades, quantities, unclear = _numbers(folded)
    words, negated = _grade_words(folded)
    grades.extend(words)
    if unclear or negated or len(set(grades)) > 1 or (grades and quantities):
        return Unclear("ambiguous", _note(body))
    note = _note(body)
    if not grades:
        return Report(None, note) if note else Unclear("empty")
    severity = grades[0]
    is_only_the_grade = bare == str(severity) or any(bare == phrase for phrase, _ in GRADE_PHRASES)
    return Report(severity, None if is_only_the_grade else note)


def _note(body: str) -> str | None:
    text = body.strip()[:MAX_NOTE].strip()
    return text or None


def _numbers(folded: str) -> tuple[list[int], int, bool]:
    """Grades found as numbers, how many numbers were quantities, and whether any
    number stands where a grade would but is not one (5, 10, 2.5, 7/10)."""
    grades: list[int] = []
    quantities = 0
    unclear = False
    skip_until = -1
    for m in _NUMBER.finditer(folded):
        if m.start() < skip_until:
            continue
        start, end = m.span()
        before, after = folded[:start], folded[end:]
        if (before and (before[-1].isalpha() or before[-1] == ":")) or after.startswith(":"):
            quantities += 1  # part of a word or a time of day ("covid19", "2:30")
            continue
        if _ORDINAL_AFTER.match(after) or _UNIT_AFTER.match(after) or _UNIT_BEFORE.search(before):
            quantities += 1
            continue
        if after[:1].isalpha():  # "2ish", "3x4": not a clean grade
            unclear = True
            continue
        text = m.group()
        if not text.isdigit() or len(text) > 3:
            unclear = True  # a decimal ("2.5", "2,5") or a long number
            continue
        value = int(text)
        scale = _SCALE_AFTER.match(after)
        if scale:
            skip_until = end + scale.end()
            if int(scale.group(1)) != 4:
                unclear = True  # "7/10", "3 out of 5": another scale
                continue
        if value > 4:
            unclear = True
            continue
        grades.append(value)
    return grades, quantities, unclear


def _grade_words(folded: str) -> tuple[list[int], bool]:
    """Grades named by words, and whether any of them was negated ("not severe")."""
    text = folded
    grades: list[int] = []
    negated = False
    for phrase, grade in GRADE_PHRASES:
        pattern = re.compile(r"(?<![a-z0-9'])" + re.escape(phrase) + r"(?![a-z0-9'])")
        while True:
            m = pattern.search(text)
            if m is None:
                break
            start, end = m.span()
            text = text[:start] + " " * (end - start) + text[end:]  # consume it
            following = _WORD.findall(folded[end:])[:2]
            if following and following[0] in OTHER_SYMPTOMS:
                continue  # "severe headache": not about the twitching
            if len(following) > 1 and following[0] == "de" and following[1] in OTHER_SYMPTOMS:
                continue
            clause = _WORD.findall(_CLAUSE_BREAK.split(folded[:start])[-1])
            if set(clause[-3:]) & OTHER_SYMPTOMS:
                continue  # "dolor de cabeza severo"
            if set(clause[-2:]) & NEGATIONS:
                negated = True
                continue
            grades.append(grade)
    return grades, negated
