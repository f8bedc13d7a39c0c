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
4. **Mentions**: the phrase patterns below, per category (regular expressions over the
   folded words). Headache counts only when severe or worsening ("migraine" and "the worst
   headache" are); vomiting only when repeated or ongoing.
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

RedFlag = str


def _words(text: str) -> frozenset[str]:
    """A set of words written as one string (easier to read in a long list)."""
    return frozenset(text.split())


#: A pattern holding this comment carries its own negation ("can't close my eye",
#: "no oigo"): a "not" inside its match does not negate it.
NEG: Final = "(?#neg)"

_CANT = (
    r"(?:can t|cant|cannot|can not|unable to|not able to|no longer able to|could not"
    r"|couldn t|couldnt)"
)
_HEADACHE_EN = r"(?:headaches?|head aches?|head pain)"
_HEADACHE_ES = r"(?:dolor(?:es)? de cabeza|cefaleas?|jaquecas?|migranas?)"
_SEVERE_EN = (
    r"(?:severe|bad|terrible|worst|intense|excruciating|horrible|awful|splitting|worsening"
    r"|worse|increasing|unbearable|huge|massive|crushing|killer|extreme|agonizing|blinding"
    r"|pounding|throbbing|thunderclap|really bad|very bad|sharp)"
)
_SEVERE_ES_WORDS = (
    r"fuerte|fuertes|intens[oa]s?|sever[oa]s?|terribles?|horribles?|insoportables?"
    r"|tremend[oa]s?|peor|brutal|espantos[oa]|fortisim[oa]|fatal"
)
_SEVERE_ES = f"(?:{_SEVERE_ES_WORDS})"
_LINK_EN = (
    r"(?:is|s|has|have|keeps|keep|getting|gets|got|been|becoming|become|that|which|very"
    r"|really|so|even|now|still|much|just|way|more|and|this|it|is getting|feels)"
)
_LINK_ES = r"(?:muy|mas|que|se|me|esta|es|cada|vez|sigue|va|cada vez|y|ya|mucho|tan|un|una)"
_PLACE_EN = r"(?:nose|nostril|ear|wound|incision|scar|cut|stitches)"
_PLACE_ES = r"(?:nariz|oido|oreja|herida|cicatriz|incision|puntos)"
_FLUID_VERB_EN = r"(?:leak\w*|drip\w*|drain\w*|com\w*|run\w*|ooz\w*|pour\w*|trickl\w*)"

FLAG_PATTERNS: Final[dict[RedFlag, tuple[str, ...]]] = {
    "facial_weakness": (
        r"\b(?:face|facial)(?: \w+){0,3} weak\w*",
        r"\bweak\w* (?:in|on|of) (?:the |my |his |her )?(?:(?:left|right) )?(?:side (?:of )?)?"
        r"(?:(?:the|my|his|her) )?(?:face|mouth|cheek|lip|smile)\b",
        r"\bdroop\w*",
        r"\bparal[yi][sz]\w*",
        r"\bpalsy\b",
        r"\blopsided\b",
        r"\bsagg\w*",
        r"\bdrool\w*",
        r"\bcrooked (?:smile|face|mouth)\b",
        r"\b(?:smile|face|mouth)(?: is| looks)? crooked\b",
        r"\bface (?:looks |is |seems )?(?:uneven|asymmetric\w*)\b",
        r"\b(?:face|mouth|lip) (?:fell|fallen|has fallen|dropped|is hanging|hanging)\b",
        r"\bmouth is hanging|\bcorner of (?:my|his|her) mouth (?:is )?(?:hanging|down)\b",
        NEG + r"\bface (?:isn t|is not|won t|doesn t|does not|will not|is no longer|not) mov\w*",
        NEG + _CANT + r" (?:fully |completely )?(?:close|shut)(?: \w+){0,2} eyes?\b",
        NEG + _CANT + r" (?:smile|blink|move (?:my |the )?(?:face|mouth|lip))\b",
        NEG + r"\bno (?:puedo|puede) (?:mover (?:la|mi|su) (?:cara|boca|labio)|parpadear)\b",
        NEG
        + r"\bnot sure (?:if )?(?:i )?can (?:fully |completely )?(?:close|shut)(?: \w+){0,2} eyes?",
        NEG + r"\beye(?: ?lid)?s? (?:won t|wont|will not|doesn t|doesnt|does not|can t|cant"
        r"|cannot|isn t|is not) (?:fully |completely )?(?:close|closing|shut)",
        r"\bdebilidad(?: \w+){0,6} (?:cara|rostro|boca|facial)\b",
        r"\b(?:cara|rostro|boca|labio|parpado)(?: \w+){0,2} (?:caid\w*|torcid\w*|debil\w*"
        r"|paraliz\w*|colgad\w*|chuec\w*)",
        r"\b(?:cara|boca|labio) (?:se (?:me |le )?)?tuerc\w*",
        r"\bse (?:me |le )?(?:cae|cayo|tuerce) (?:la |el )?(?:cara|boca|parpado|labio)\b",
        r"\bse (?:me |le )?escapa (?:el agua|la saliva|la comida|la baba)\b",
        r"\bparalisis\b",
        NEG + r"\bcara no (?:se )?(?:me |le )?mueve\b",
        NEG + r"\bno (?:puedo |logro |consigo |puede )?(?:cerrar (?:bien |del todo )?"
        r"(?:el|mi|los|mis|su|sus)"
        r" (?:\w+ )?ojos?|sonreir)\b",
        NEG + r"\b(?:ojos?|parpados?) no (?:se )?(?:me )?(?:le )?cierra",
    ),
    "hearing_loss": (
        r"\bhearing loss\b",
        r"\blos(?:t|e|ing) (?:my |the |some |all |of |his |her )*hearing\b",
        NEG + _CANT + r" (?:hear|here)\b",
        NEG + r"\b(?:don t|dont|do not|doesn t|does not) hear (?:well|good|anything|much|properly"
        r"|a thing|out of|from|on|in|with)\b",
        NEG + r"\bno hearing (?:in|on|from|out of|with)\b",
        r"\b(?:can|could) (?:barely|hardly|only just) hear\b",
        r"\b(?:hard|difficult|trouble|difficulty|problems?) (?:to )?hear\w*",
        r"\bdeaf\w*",
        r"\bhearing(?: \w+){0,2} (?:gone|worse|reduced|muffled|decreased|going|bad|poor|weaker"
        r"|down|less)\b",
        r"\b(?:muffled|reduced|decreased|less) hearing\b",
        r"\bmuffled\b",
        r"\bperdida (?:de |de la |del )?(?:audicion|oido)\b",
        r"\bperdida auditiva\b",
        r"\b(?:he |ha )?perd(?:i|ido|io) (?:la |el )?(?:audicion|oido)\b",
        NEG + r"\bno (?:oigo|escucho|oye|escucha|puedo oir|puedo escuchar|puede oir)\b",
        r"\bsord[oa]s?\b",
        r"\bsordera\b",
        r"\b(?:oigo|escucho|oye) (?:muy )?(?:menos|mal|poco|nada)\b",
        r"\b(?:oigo|escucho)(?: \w+){0,2} apagad\w*",
        r"\bme cuesta (?:oir|escuchar)\b",
    ),
    "severe_headache": (
        r"\b" + _SEVERE_EN + r"(?: \w+)? " + _HEADACHE_EN,
        r"\b" + _HEADACHE_EN + r"(?: " + _LINK_EN + r")* " + _SEVERE_EN + r"\b",
        r"\b" + _HEADACHE_EN + r"(?: " + _LINK_EN + r")* killing me\b",
        r"\bmigraines?\b",
        r"\bhead (?:is |s )?killing me\b",
        r"\b" + _SEVERE_EN + r" pain in (?:my |the )?head\b",
        r"\bhead (?:hurts|is hurting|aches|pounds|is pounding)(?: \w+){0,2} (?:bad|badly|terrible"
        r"|terribly|awful|severe|more|worse|a lot)\b",
        r"\b" + _SEVERE_ES + r"(?: \w+)? " + _HEADACHE_ES,
        r"\b"
        + _HEADACHE_ES
        + r"(?: "
        + _LINK_ES
        + r")* (?:"
        + _SEVERE_ES_WORDS
        + r"|empeora\w*|aumenta\w*|en aumento)\b",
        r"\bdolor " + _SEVERE_ES + r" de cabeza\b",
        r"\bmigran\w*",
        r"\bjaquecas?\b",
        r"\bempeora\w*(?: \w+){0,2} " + _HEADACHE_ES,
        r"\b(?:me )?duele (?:mucho|muchisimo|demasiado|horrible|fuerte)(?: \w+)? cabeza\b",
        r"\bcabeza (?:me )?duele (?:mucho|muchisimo|demasiado|horrible|fuerte)\b",
        r"\bduele (?:la )?cabeza cada vez (?:mas|peor)\b",
        r"\bcabeza (?:me |le )?(?:esta )?(?:matando|revienta|va a explotar)\b",
        r"\b(?:me |le )?revienta (?:la )?cabeza\b",
    ),
    "fever": (
        r"\bfever\w*",
        r"\bfebrile\b",
        r"\bchills\b",
        r"\bburning up\b",
        r"\brunning a (?:temp|temperature|fever)\b",
        r"\bhigh temp(?:erature)?\b",
        r"\btemp(?:erature)? (?:is |s |was |went |has gone |got )?(?:very |really |so )?"
        r"(?:high|up|elevated|raised)\b",
        r"\btemp(?:erature)?(?: \w+){0,2} (?:3[89]|4[0-2]|10[0-6])\b",
        r"\bthermometer(?: \w+){0,2} (?:3[89]|4[0-2]|10[0-6])\b",
        r"\b(?:3[89]|4[0-2]) [0-9]\b",
        r"\b10[0-6] [0-9]\b",
        r"\b(?:3[89]|4[0-2])(?: [0-9])? ?(?:c|degrees|grados|celsius)\b",
        r"\b10[0-6](?: [0-9])? ?(?:f|degrees|fahrenheit)\b",
        r"\bfiebre\b",
        r"\bcalentura\b",
        r"\bfebril\b",
        r"\bescalofrios?\b",
        r"\btemperatura (?:muy )?(?:alta|elevada)\b",
        r"\btemperatura(?: \w+){0,2} (?:3[89]|4[0-2])\b",
        r"\btermometro(?: \w+){0,2} (?:3[89]|4[0-2])\b",
        r"\b(?:3[89]|4[0-2])(?: [0-9])? (?:de )?(?:temperatura|fiebre|temp)\b",
    ),
    "clear_fluid": (
        r"\bclear (?:fluid|liquid|discharge|drainage|drip\w*|water\w*|runny)",
        r"\bwatery (?:fluid|discharge|drainage|drip\w*|nose|ear)",
        r"\b(?:fluid|liquid|water|discharge|drainage)(?: \w+){0,3} (?:from|out of) (?:my |the )?"
        r"(?:(?:left|right) )?" + _PLACE_EN,
        r"\b(?:clear|watery|salty)(?: \w+){0,3} (?:out of|from) (?:my |the )?(?:(?:left|right) )?"
        + _PLACE_EN,
        r"\b" + _PLACE_EN + r"(?: is| s| keeps| are| keep)? " + _FLUID_VERB_EN,
        r"\b(?:wound|incision|scar|cut|stitches)(?: \w+){0,3} (?:leak|drip|drain|ooz|wet)\w*",
        r"\b(?:leak\w*|drip\w*|drain\w*|ooz\w*) (?:from|out of) (?:my |the )?"
        r"(?:(?:left|right) )?" + _PLACE_EN + r"\b",
        r"\brunny nose\b|\bnose (?:is )?(?:running|runny)\b",
        r"\bpillow is wet\b",
        r"\bliquido (?:claro|transparente|acuoso)\b",
        r"\b(?:sale|salen|sale agua|sale liquido|gotea|gotean|chorrea|escurre|supura|drena)"
        r"(?: \w+){0,3} " + _PLACE_ES + r"\b",
        r"\b" + _PLACE_ES + r"(?: \w+){0,3} (?:gotea|goteando|chorrea|escurre|supura|supurando"
        r"|drena|drenando|moja|mojada)\b",
        r"\bmoja(?: \w+){0,3} (?:por|de) (?:el|la|mi) (?:oido|nariz|herida)\b",
    ),
    "stiff_neck": (
        r"\bstiff\w*(?: \w+){0,2} neck\b",
        r"\bneck(?: \w+){0,4} (?:stiff\w*|rigid)\b",
        r"\bchin to (?:my |his |her |the )?chest\b",
        NEG + _CANT + r" (?:bend|move|turn|lower) (?:my |the |his |her )?(?:neck|head down)\b",
        NEG + r"\bneck (?:won t|will not|doesn t|does not|can t|cannot) (?:bend|move|turn)\b",
        r"\b(?:hard|difficult|painful|hurts) to (?:bend|move|turn) (?:my |the )?neck\b",
        r"\bcuello(?: \w+){0,3} (?:rigid[oa]|ties[oa]|duro|agarrotado)\b",
        r"\brigidez(?: \w+){0,3} (?:cuello|nuca)\b",
        r"\bnuca(?: \w+){0,2} (?:rigid[oa]|tiesa|dura)\b",
        NEG + r"\bno puedo (?:mover|doblar|girar) (?:el|mi) cuello\b",
        NEG + r"\bno puedo (?:bajar|agachar) la cabeza\b",
        r"\bme cuesta (?:mover|doblar|girar) (?:el|mi) cuello\b",
        r"\b(?:pecho con (?:la|el) (?:barbilla|menton)|(?:barbilla|menton) (?:al|con el) pecho)\b",
    ),
    "repeated_vomiting": (
        r"\bvomiting\b",
        r"\bvomits\b",
        r"\bthrowing up\b",
        r"\bpuking\b",
        r"\bkeep (?:on )?(?:vomit\w*|throwing up|being sick|puking)",
        r"\b(?:vomited|threw up|thrown up|been sick|puked|vomit) (?:\w+ ){0,2}"
        r"(?:again|twice|several"
        r"|many|multiple|repeatedly|all (?:day|night)|times|more than once|over and over)\b",
        r"\brepeated(?:ly)? (?:vomit\w*|throwing up|being sick)",
        NEG + _CANT + r" stop (?:vomit\w*|throwing up|being sick)",
        r"\bvomitos\b",
        r"\bvomitando\b",
        r"\b(?:vomite|he vomitado|vomito|vomitado) (?:\w+ ){0,2}(?:varias|muchas|otra vez"
        r"|de nuevo|dos|tres|mucho|todo el dia|toda la noche|sin parar|veces|todo lo que)\b",
        NEG + r"\bno (?:paro|dejo|puedo dejar|para|deja) de vomitar\b",
        r"\bvuelv\w* a vomitar\b",
    ),
    "confusion": (
        r"\bconfused\b",
        r"\bconfusion\b",
        r"\bdisorient\w*",
        NEG
        + r"\b(?:don t|dont|do not|doesn t|doesnt|does not) know where (?:i|he|she) (?:am|is)\b",
        NEG + r"\b(?:doesn t|does not|didn t|did not|can t|cannot) recogni[sz]e\b",
        r"\bforget\w* where (?:i|he|she) (?:am|is|was)\b",
        r"\blost in (?:my|his|her|our) own (?:house|home)\b",
        r"\bacting (?:strange|weird|odd)\w*",
        r"\btalking nonsense\b|\bnonsense\b",
        NEG + _CANT + r" think (?:straight|clearly)\b",
        NEG + r"\bnot making (?:any )?sense\b",
        r"\bconfundid[oa]s?\b",
        r"\bdesorientad[oa]s?\b",
        r"\bdesorientacion\b",
        NEG + r"\bno (?:se|sabe) (?:donde|en donde|que dia)\b",
        NEG + r"\bno (?:me |nos |la |lo |le )?reconoce\b",
        NEG + r"\bsin sentido\b",
        r"\b(?:me pierdo|se pierde|se perdio|me perdi) en (?:mi|su|la) (?:propia )?casa\b",
    ),
}

RED_FLAGS: Final[tuple[RedFlag, ...]] = tuple(FLAG_PATTERNS)
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
