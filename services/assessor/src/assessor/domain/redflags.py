"""Red flags: does a report's free text mention a possible complication after MVD?

The rules page lists them: facial weakness / droop / can't close the eye; new hearing loss;
severe or worsening headache; fever; clear fluid from nose, ear or wound; stiff neck;
repeated vomiting; confusion — in English and Spanish, with paraphrases, misspellings and
missing accents. A mention clearly negated in the same clause is not a red flag; a hedged
one is. When in doubt, it is a red flag. Measured on ``tests/corpus/`` (``make corpus``).

How a text is read (each step is small enough for a clinician to argue with):

1. **Fold**: lower case, accents removed ("Rígido" = "rigido"), punctuation dropped
   ("can't" → "can t"); emoji are ignored.
2. **Clauses**: the text is cut at ``. , ; ! ? ( )`` and newlines (not inside "38.5") and
   before "but / however / although / pero / aunque / sino …". Negation and hedging never
   reach across a clause boundary ("no fever, but my neck is stiff").
3. **Spelling**: a word that is not one of the matcher's words is replaced by the closest
   one when it is one edit away (two for long words) — "headach", "vomitting", "cabesa",
   "rijido" — using rapidfuzz's optimal-string-alignment distance; words shorter than six
   letters only through a short table of seen misspellings ("fevr", "stif", "nek").
4. **Mentions**: the phrase patterns of ``redflag_phrases``, per category (regular
   expressions over the folded words). Headache counts only when severe or worsening
   ("migraine" and "the worst headache" are); vomiting only when repeated or ongoing.
5. **Negation** (ConText-style, rules only): a mention is negated when, in its clause,
   a trigger ("no", "not", "never", "without", "don't", "sin", "nunca", "ni", "nada de" …)
   comes before it with only filler words between ("I don't have a fever", "no chills or
   fever", "sin fiebre ni vómitos"), or a trigger sits inside a mention whose pattern has
   none of its own ("my neck is not stiff"), or the clause ends with the mention and a bare
   "no" ("fever: no"). Pseudo-triggers do not negate ("no idea why", "without a doubt",
   "no better", "no se me quita la fiebre"), nor "never" before a comparison ("never had a
   headache this bad"). A **hedge** anywhere in the clause ("maybe", "I think", "not
   sure", "creo", "a lo mejor") or a question mark ends any negation: "I don't think I
   have a fever" and "no fever?" are red flags.

Each finding carries its category and the words it matched (the evidence for the page).
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from rapidfuzz import process
from rapidfuzz.distance import OSA

from assessor.domain.redflag_phrases import FLAG_PATTERNS, NEG, RedFlag
from assessor.domain.redflag_phrases import RED_FLAGS as RED_FLAGS  # re-exported
from assessor.domain.redflag_phrases import words as _words

_COMPILED: Final[tuple[tuple[RedFlag, re.Pattern[str], bool], ...]] = tuple(
    (flag, re.compile(p), NEG in p) for flag, patterns in FLAG_PATTERNS.items() for p in patterns
)

# --- spelling -----------------------------------------------------------------------

#: The words the patterns are built from: the targets of spelling correction.
LEXICON: Final[frozenset[str]] = (
    _words("""fever fevers feverish febrile chills temperature thermometer headache headaches
    migraine migraines severe terrible horrible excruciating unbearable worst splitting
    pounding throbbing vomiting vomited throwing stiff stiffness rigid confused confusion
    disoriented disorientation drooping droopy paralyzed paralysis weakness facial crooked
    hearing muffled liquid leaking dripping draining drainage discharge oozing incision
    nostril stitches fiebre febril calentura escalofrios temperatura termometro cabeza
    jaqueca migrana cefalea insoportable vomito vomitos vomitando vomitar vomitado cuello
    rigido rigida rigidez confundido confundida desorientado desorientada audicion sordera
    caida torcida paralisis debilidad liquido transparente herida cicatriz supura doblar
    vomite severa severo severas severos fuerte intensa intenso terribles horribles""")
)
#: Misspellings too short for edit distance to be safe, seen in patients' texts.
ALIASES: Final[dict[str, str]] = {
    "fevr": "fever",
    "fevar": "fever",
    "fiver": "fever",
    "feve": "fever",
    "sever": "severe",
    "stif": "stiff",
    "stiif": "stiff",
    "nek": "neck",
    "neckk": "neck",
    "fibre": "fiebre",
    "fibra": "fiebre",
    "oygo": "oigo",
    "naris": "nariz",
    "erida": "herida",
    "mober": "mover",
    "bomito": "vomito",
    "vomit": "vomit",
}
#: Real words one edit away from a lexicon word: never corrected.
PROTECTED: Final[frozenset[str]] = (
    _words("""dropped dropping leaving training raining heading wearing bearing fearing nearing
    cooked booked herring mediation headed""")
)
_MIN_FUZZY_LEN = 6
_MAX_GAP = 4  # filler words a negation reaches over
#: ... and every whole word the patterns spell out ("intense" must not become "intenso").
_PATTERN_WORDS: Final[frozenset[str]] = frozenset(
    w
    for patterns in FLAG_PATTERNS.values()
    for p in patterns
    for w in re.findall(r"(?<![a-z\\])[a-z]{4,}(?![a-z\\\[(?])", p)
)
_LEXICON_LIST: Final[tuple[str, ...]] = tuple(sorted(LEXICON | _PATTERN_WORDS))


_KNOWN: Final[frozenset[str]] = frozenset(_LEXICON_LIST)


@functools.lru_cache(maxsize=8192)
def _spelled(word: str) -> str:
    if word in ALIASES:
        return ALIASES[word]
    if len(word) < _MIN_FUZZY_LEN or word in _KNOWN or word in PROTECTED or word.isdigit():
        return word
    best = process.extractOne(
        word, _LEXICON_LIST, scorer=OSA.distance, score_cutoff=1 if len(word) < 9 else 2
    )
    return word if best is None else best[0]


# --- negation (ConText-style) ---------------------------------------------------------

_TRIGGERS: Final = _words(
    """no not never without nor neither none denies deny dont doesnt didnt havent hasnt
    isnt arent wasnt werent aint nope sin nunca ni tampoco ningun ninguna ninguno jamas"""
)
#: "don t", "haven t": the "t" after one of these is a trigger.
_AUX_T: Final = _words("don doesn didn haven hasn isn aren wasn weren ain hadn shouldn")
_TRIGGER_PAIRS: Final = frozenset({("nada", "de"), ("free", "of"), ("negative", "for")})
#: Words a negation reaches over ("I don't have any fever", "no tengo fiebre").
_FILLER: Final = _words(
    """have has had having any a an the my his her their our or nor more longer signs sign
    of real really such get got getting feel feeling felt been be experience experienced
    experiencing notice noticed noticing symptoms seen see anymore at all ever much
    new further other t am is are was were s nausea pain dizziness headache
    headaches problems problem issues swelling redness bleeding this that
    tengo tiene tienes tuve tuvo tenido tenia he ha has hay habido mas el la los las un una
    unos de del me le siento noto senal senales signos sintomas o estoy esta estado nada ya
    nauseas mareo mareos dolor problemas mucho muy con tampoco"""
)
#: Phrases whose negation word negates nothing ("no idea why but …").
_PSEUDO: Final[tuple[tuple[str, ...], ...]] = tuple(
    tuple(p.split())
    for p in (
        "no idea",
        "no doubt",
        "without a doubt",
        "without doubt",
        "no better",
        "not better",
        "no improvement",
        "not improving",
        "no change",
        "not going away",
        "not go away",
        "not going down",
        "not only",
        "no matter",
        "no medicine",
        "no relief",
        "not good",
        "not well",
        "no mejora",
        "no mejoro",
        "no hay mejoria",
        "no se me quita",
        "no se le quita",
        "no se quita",
        "no me baja",
        "no le baja",
        "no baja",
        "no se va",
        "no para",
        "no ayuda",
        "no sirve",
        "no se que",
    )
)
#: "never/nunca" before a comparison is not a negation ("never had a headache this bad").
_COMPARISON: Final[tuple[tuple[str, ...], ...]] = tuple(
    tuple(p.split())
    for p in (
        "this bad",
        "so bad",
        "that bad",
        "this much",
        "like this",
        "this strong",
        "this severe",
        "tan fuerte",
        "tan intenso",
        "asi de",
        "como este",
        "como esta",
    )
)
_HEDGES: Final = _words(
    """maybe perhaps possibly possible probably might may think thinking thought guess
    seems seem seemed wonder unsure sure suspect believe kinda if whether worried afraid
    creo cree creer quizas quiza posible posiblemente probablemente parece segura seguro
    capaz supongo preocupa miedo si"""
)
_HEDGE_PAIRS: Final = frozenset(
    {("kind", "of"), ("sort", "of"), ("could", "be"), ("tal", "vez"), ("a", "lo"), ("puede", "que")}
)
_POST_NEGATIONS: Final = frozenset({"no", "none", "nope", "negative", "nada", "ninguna", "ninguno"})
_CLAUSE_WORDS: Final = _words("but however although though except yet pero aunque sino excepto")
_CLAUSE_BREAK = re.compile(r"[;!?¡¿\n()]|(?<!\d)[.,]|[.,](?!\d)")


@dataclass(frozen=True)
class Finding:
    """One red flag: its category and the words of the text that matched (evidence)."""

    flag: RedFlag
    words: str


@dataclass(frozen=True)
class _Text:
    words: tuple[str, ...]  # as written (folded)
    spelled: tuple[str, ...]  # after spelling correction
    clause: tuple[int, ...]  # clause number of each word
    asked: frozenset[int]  # clauses that end with "?"
    joined: str  # " ".join(spelled)
    starts: tuple[int, ...]  # character offset of each word in ``joined``
    written: str  # " ".join(words)
    written_starts: tuple[int, ...]


def fold(text: str) -> str:
    """Lower case, accents removed."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def normalize(text: str) -> str:
    """Lower case, no accents, words separated by single spaces ("can't" → "can t")."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", fold(text)).split())


def _read(note: str) -> _Text:
    folded = fold(note)
    words: list[str] = []
    clause: list[int] = []
    asked: set[int] = set()
    number = 0
    pos = 0
    for piece in [*_CLAUSE_BREAK.finditer(folded), None]:
        end = len(folded) if piece is None else piece.start()
        for w in re.findall(r"[a-z0-9]+", folded[pos:end]):
            if w in _CLAUSE_WORDS and clause and clause[-1] == number:
                number += 1
            words.append(w)
            clause.append(number)
        if piece is not None:
            if piece.group() == "?":
                asked.add(number)
            pos = piece.end()
        number += 1
    spelled = tuple(_spelled(w) for w in words)
    return _Text(
        tuple(words),
        spelled,
        tuple(clause),
        frozenset(asked),
        " ".join(spelled),
        _offsets(spelled),
        " ".join(words),
        _offsets(words),
    )


def _offsets(words: list[str] | tuple[str, ...]) -> tuple[int, ...]:
    starts: list[int] = []
    offset = 0
    for w in words:
        starts.append(offset)
        offset += len(w) + 1
    return tuple(starts)


def _span(starts: tuple[int, ...], m: re.Match[str]) -> tuple[int, int]:
    """The word indexes [i, j) a match covers."""
    i = j = 0
    for k, s in enumerate(starts):
        if s <= m.start():
            i = k
        if s < m.end():
            j = k + 1
    return i, j


def _within(seq: tuple[str, ...], phrases: tuple[tuple[str, ...], ...]) -> set[int]:
    covered: set[int] = set()
    for p in phrases:
        for k in range(len(seq) - len(p) + 1):
            if seq[k : k + len(p)] == p:
                covered.update(range(k, k + len(p)))
    return covered


def _negated(text: _Text, i: int, j: int, bears: bool, concepts: set[int]) -> bool:
    c = text.clause[i]
    lo = next(k for k in range(len(text.words)) if text.clause[k] == c)
    hi = max(k for k in range(len(text.words)) if text.clause[k] == c) + 1
    words = text.spelled
    clause = words[lo:hi]
    if c in text.asked or set(clause) & _HEDGES:
        return False
    if any((a, b) in _HEDGE_PAIRS for a, b in itertools.pairwise(clause)):
        return False
    pseudo = {lo + k for k in _within(clause, _PSEUDO)}
    comparison = bool(_within(clause, _COMPARISON))

    def trigger_at(k: int) -> bool:
        if k in pseudo:
            return False
        w = words[k]
        if w in ("never", "nunca") and comparison:
            return False
        if w in _TRIGGERS:
            return True
        if w == "t" and k > lo and words[k - 1] in _AUX_T:
            return True
        return k + 1 < hi and (w, words[k + 1]) in _TRIGGER_PAIRS

    # a trigger before the mention, with only filler (or other mentions) between
    for k in range(i - 1, max(lo, i - _MAX_GAP - 2) - 1, -1):
        if trigger_at(k):
            return True
        if words[k] not in _FILLER and k not in concepts:
            break
    # a trigger inside a mention whose pattern has no negation of its own
    if not bears and any(trigger_at(k) for k in range(i + 1, j)):
        return True
    # "fever: no", "fiebre no"
    after = words[j:hi]
    return len(after) == 1 and after[0] in _POST_NEGATIONS


def findings(note: str | None) -> tuple[Finding, ...]:
    """The red flags a text mentions, in the fixed order of ``RED_FLAGS``, each with the
    words that matched; () for none."""
    if not note:
        return ()
    return _findings(note)


@functools.lru_cache(maxsize=1 << 16)  # pure: every decide re-reads a patient's notes
def _findings(note: str) -> tuple[Finding, ...]:
    text = _read(note)
    matches: dict[tuple[RedFlag, int, int], bool] = {}
    # The words as written, and as corrected: a correction never hides a match.
    for joined, starts in ((text.joined, text.starts), (text.written, text.written_starts)):
        for flag, pattern, bears in _COMPILED:
            for m in pattern.finditer(joined):
                if m.end() > m.start():
                    i, j = _span(starts, m)
                    matches.setdefault((flag, i, j), bears)
    concepts = {k for _, i, j in matches for k in range(i, j)}
    found: dict[RedFlag, Finding] = {}
    for (flag, i, j), bears in matches.items():
        if flag in found or _negated(text, i, j, bears, concepts):
            continue
        found[flag] = Finding(flag, " ".join(text.words[i:j]))
    return tuple(found[f] for f in RED_FLAGS if f in found)


def red_flags(note: str | None) -> tuple[RedFlag, ...]:
    """The red flags a note mentions, in the fixed order of ``RED_FLAGS``; () for none."""
    return tuple(f.flag for f in findings(note))
