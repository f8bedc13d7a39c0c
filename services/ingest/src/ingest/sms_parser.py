"""What a text from a phone means: a pure parser, no I/O, no clock, no logging.

``parse_reply(body, opt_out_type)`` returns one of:

- ``Stop`` / ``Start`` / ``Help`` — Twilio's opt-out keywords (the whole message is the
  keyword, any case, surrounding whitespace and punctuation ignored), or Twilio's
  ``OptOutType`` form field, which wins over the body when present;
- ``Ack(code)`` — ``ACK <code>`` (for care-team phones; the caller decides who may ACK);
- ``Report(severity, note)`` — a grade 0–4, with the free text kept as the note (unless the
  message is nothing but the grade), so red-flag phrases reach the assessor;
- ``Unclear(reason, note)`` — no grade can be told for sure: empty, none at all
  (``no_grade``: "worse", "neck stiffness since yesterday") or several / a malformed one
  (``ambiguous``: "2 or 3", "2-3", "5", "2.5", "7/10"). The words are kept as ``note`` (a
  red flag in them still counts); the caller asks once for a number.

Grades follow the rules page ("Free text"): a reply is a grade when it holds exactly one
grade-like token — a digit 0–4 or a number word (zero/none/one/two/three/four;
cero/ninguno/uno/dos/tres/cuatro) — anywhere in the text ("two, worse than yesterday",
"tres, peor que ayer", "about a 3", "3/4", "3 out of 4"), not part of a larger number, a
temperature ("39 de temperatura"), a date ("Dec 3", "3 de diciembre"), a time ("2:30", "a
las 3"), a count ("3 spasms", "10 days", "two days ago") or a range ("2-3": unclear). A
whole reply that is one word of the scale ("mild", "leve", "moderate", "severe", "no
twitching", "ninguno") is that grade; inside a sentence such words are not grade-like
("severe headache" grades the headache). "worse"/"peor" and "better"/"mejor" are not grades.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

MAX_NOTE = 1000


def _words(text: str) -> frozenset[str]:
    """A set of words written as one string (easier to read in a long list)."""
    return frozenset(text.split())


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
    reason: Literal["empty", "no_grade", "ambiguous"]
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

#: Number words that count as a grade anywhere in a sentence (the rules page's list).
SENTENCE_NUMBER_WORDS = {
    "zero": 0,
    "none": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "cero": 0,
    "ninguno": 0,
    "uno": 1,
    "dos": 2,
    "tres": 3,
    "cuatro": 4,
}

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
_NUMBER_WORD = re.compile(
    r"(?<![a-z0-9'])(?:" + "|".join(SENTENCE_NUMBER_WORDS) + r")(?![a-z0-9'])"
)
_ANY_NUMBER = (
    r"(?:\d+|zero|none|one|two|three|four|five|six|seven|eight|nine|ten|cero|uno|dos|tres"
    r"|cuatro|cinco|seis|siete|ocho|nueve|diez)"
)
_RANGE_JOIN = r"(?:\s*[-–—~]\s*|\s+(?:to|or|o|u|a|hasta)\s+)"
_RANGE_AFTER = re.compile(_RANGE_JOIN + _ANY_NUMBER + r"(?![a-z0-9])")
_RANGE_BEFORE = re.compile(
    r"(?:(?<![a-z0-9])" + _ANY_NUMBER + _RANGE_JOIN + r"|(?<![a-z])(?:between|entre)\s+)$"
)
_COUNT_AFTER = re.compile(
    r"\s*(?:spasms?|twitch(?:es)?|tics?|espasmos?|episodes?|episodios?|attacks?|ataques?"
    r"|eyes|ojos|sides|lados|people|personas|kids|children|hijos|cups?|tazas?|glasses"
    r"|vasos|miles?|km|kilometers?|kilometros?|steps|pasos|degrees|grados|°|naps|siestas"
    r"|cigarettes|cigarros|drinks|beers|cervezas|meals|comidas|blocks|cuadras|floors|pisos"
    r"|stitches|puntos|pounds|libras|kilos?|of us|de nosotros)(?![a-z])"
)
_SPASMS_AFTER = re.compile(r"\s*(?:spasms?|twitch(?:es)?|tics?|espasmos?)(?![a-z])")
_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|enero|febrero|marzo|abril"
    r"|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre)"
)
#: Before a number: a month ("Dec 3") or "a las" ("a las 3 de la tarde").
_DATE_OR_TIME = re.compile(r"(?:(?<![a-z])" + _MONTHS + r"\.?|(?<![a-z])(?:las|la))\s*$")
_DATE_AFTER = re.compile(
    r"\s*(?:(?:de\s+)?" + _MONTHS + r"|de\s+la\s+(?:manana|tarde|noche)|o'?clock)(?![a-z])"
)
_TEMPERATURE_BEFORE = re.compile(
    r"(?:temp|temperature|temperatura|fever|fiebre|thermometer|termometro|calentura)"
    r"[^0-9]{0,16}$"
)
_TEMPERATURE_AFTER = re.compile(
    r"\s*(?:°|º|degrees|grados|celsius|fahrenheit|[cf](?![a-z])|(?:de\s+)?(?:temperatura"
    r"|fiebre|temp))"
)
_DETERMINERS = frozenset({"the", "these", "those", "all", "both", "los", "las", "unos"})
_NOT_A_NUMBER_BEFORE = {
    "one": _words("""no the this that which each every any some another other left right last next a
        only little big new old same first good bad"""),
    "uno": _words("el un cada ningun alguno otro cualquier solo"),
    "none": frozenset(),
}
_NOT_A_NUMBER_AFTER = re.compile(
    r"\s*(?:of|de|more|another|thing|point|way|eye|ojo|side|lado)(?![a-z])"
)


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
    whole = dict(GRADE_PHRASES).get(bare)
    if whole is not None:  # the whole reply is a word of the scale ("mild", "ninguno")
        return Report(whole, None)

    spaced = _SPACES.sub(" ", folded)
    grades, unclear = _numbers(spaced)
    if not _decided(grades, unclear):
        words, words_unclear = _number_words(spaced)
        grades.extend(words)
        unclear = unclear or words_unclear
    note = _note(body)
    if unclear or len(set(grades)) > 1:
        return Unclear("ambiguous", note)
    if not grades:
        return Unclear("no_grade", note) if note else Unclear("empty")
    severity = grades[0]
    return Report(severity, None if bare == str(severity) else note)


#: How much text either side of a number decides what it is. Every pattern that looks at
#: the context is anchored at the number and spans a few words at most (the longest,
#: "thermometer" and 16 more characters), so a window keeps the scan linear in the text's
#: length: slicing the whole prefix for every number made a 1,600-character reply of
#: "2 2 2 …" take 0.3 s of the event loop.
_CONTEXT = 64
_SPACES = re.compile(r"\s+")


def _context(text: str, start: int, end: int) -> tuple[str, str]:
    """The text just before ``start`` and just after ``end`` (whitespace already collapsed,
    so a window of ``_CONTEXT`` characters holds every pattern's reach)."""
    return text[max(0, start - _CONTEXT) : start], text[end : end + _CONTEXT]


def _note(body: str) -> str | None:
    text = body.strip()[:MAX_NOTE].strip()
    return text or None


def _decided(grades: list[int], unclear: bool) -> bool:
    """Nothing later in the text can change the outcome: it is already unclear, or already
    holds two different grades (checked as each grade is appended, so O(1) here)."""
    return unclear or (len(grades) > 1 and grades[-1] != grades[0])


def _numbers(folded: str) -> tuple[list[int], bool]:
    """Grades found as digits, and whether any number stands where a grade would but
    cannot be read as one (5, 2.5, 7/10, 2-3, 2ish). Quantities ("3 spasms", "10 days"),
    temperatures ("39 de temperatura"), dates ("Dec 3", "3 de diciembre") and times of day
    ("2:30", "at 3pm", "a las 3") are not grade-like: they are skipped."""
    grades: list[int] = []
    unclear = False
    skip_until = -1
    for m in _NUMBER.finditer(folded):
        if _decided(grades, unclear):
            break
        if m.start() < skip_until:
            continue
        start, end = m.span()
        before, after = _context(folded, start, end)
        text = m.group()
        if (before and (before[-1].isalpha() or before[-1] == ":")) or after.startswith(":"):
            continue  # part of a word or a time of day ("covid19", "2:30")
        if _RANGE_AFTER.match(after) or _RANGE_BEFORE.search(before):
            unclear = True  # "2-3", "2 or 3", "between 1 and 2"
            continue
        if text == "0" and _SPASMS_AFTER.match(after):
            grades.append(0)  # "0 spasms": no twitching
            continue
        if (
            _ORDINAL_AFTER.match(after)
            or _UNIT_AFTER.match(after)
            or _UNIT_BEFORE.search(before)
            or _COUNT_AFTER.match(after)
            or _DATE_OR_TIME.search(before)
            or _DATE_AFTER.match(after)
        ):
            continue  # a quantity, a count, a date or a time of day
        whole = re.split(r"[.,]", text)[0]
        if int(whole[:4]) > 4 and (
            _TEMPERATURE_BEFORE.search(before) or _TEMPERATURE_AFTER.match(after)
        ):
            continue  # a temperature ("39 de temperatura", "fever of 38.5")
        if after[:1].isalpha():  # "2ish", "3x4": not a clean grade
            unclear = True
            continue
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
    return grades, unclear


def _number_words(folded: str) -> tuple[list[int], bool]:
    """Grades named by number words inside a sentence ("two, worse than yesterday",
    "tres, peor que ayer"), skipping counts ("two days"), pronouns ("no one", "the left
    one", "los dos") and ranges (those are caught with the digits)."""
    grades: list[int] = []
    unclear = False
    for m in _NUMBER_WORD.finditer(folded):
        if _decided(grades, unclear):
            break
        word = m.group()
        before, after = _context(folded, m.start(), m.end())
        previous = _WORD.findall(before)[-1:]
        if previous and previous[0] in _NOT_A_NUMBER_BEFORE.get(word, _DETERMINERS):
            continue
        if _NOT_A_NUMBER_AFTER.match(after):
            continue
        if _RANGE_AFTER.match(after) or _RANGE_BEFORE.search(before):
            unclear = True  # "two or three", "four or five"
            continue
        if word in ("zero", "cero") and _SPASMS_AFTER.match(after):
            grades.append(0)
            continue
        if _UNIT_AFTER.match(after) or _COUNT_AFTER.match(after) or _UNIT_BEFORE.search(before):
            continue
        grades.append(SENTENCE_NUMBER_WORDS[word])
    return grades, unclear
