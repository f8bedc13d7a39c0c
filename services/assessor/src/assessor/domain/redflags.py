"""Red flags: does a report's free text mention a possible complication after MVD?

The rules page lists them: facial weakness / droop / can't close the eye; new hearing loss;
severe or worsening headache; fever; clear fluid from nose, ear or wound; stiff neck;
repeated vomiting; confusion — in English and Spanish.

How the matcher reads text (the choices, so a clinician can argue with them):

* Case, accents and punctuation are ignored ("Rígido", "rigido" and "RIGIDO!" are one word;
  "can't", "cant" and "cannot" all match).
* It flags a *mention*. Negation is not interpreted: "no fever" is flagged. A missed
  meningitis or CSF leak costs far more than one unnecessary page, and negation in short SMS
  text is unreliable ("no, fever since last night"; "not sure if it's a fever").
* Headache counts only when the text says it is severe or worsening ("bad headache",
  "headache getting worse", "dolor de cabeza fuerte"); a plain "headache" is not a flag.
* Vomiting counts when it is ongoing or repeated ("vomiting", "throwing up", "threw up
  twice", "vómitos", "sigo vomitando"); a single "I threw up" / "vomité" is not.
* "Hearing loss" is flagged whether or not the patient says "new": the page's "new" cannot
  be judged from one text, and the care team can.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Final

RedFlag = str

_CANT = r"(?:can t|cant|cannot|can not|unable to|could not|couldn t|couldnt)"
_HEADACHE_EN = r"(?:headaches?|head aches?|head pain)"
_HEADACHE_ES = r"(?:dolor(?:es)? de cabeza|cefaleas?|jaquecas?|migranas?)"
_SEVERE_EN = (
    r"(?:severe|bad|terrible|worst|intense|excruciating|horrible|awful|splitting|worsening"
    r"|worse|increasing|unbearable|huge|massive|crushing|killer|extreme|agonizing|blinding)"
)
_SEVERE_ES_WORDS = (
    r"fuerte|fuertes|intens[oa]s?|sever[oa]s?|terribles?|horribles?|insoportables?"
    r"|tremend[oa]s?|peor|brutal|espantos[oa]|fortisim[oa]"
)
_SEVERE_ES = f"(?:{_SEVERE_ES_WORDS})"
_LINK_EN = (
    r"(?:is|s|has|have|keeps|keep|getting|gets|got|been|becoming|become|that|which|very"
    r"|really|so|even|now|still|much|just|way|more|and)"
)
_LINK_ES = r"(?:muy|mas|que|se|me|esta|es|cada|vez|sigue|va|cada vez|y|ya|mucho)"
_PLACE_EN = r"(?:nose|nostril|ear|wound|incision|scar|cut|stitches)"
_PLACE_ES = r"(?:nariz|oido|oreja|herida|cicatriz|incision|puntos)"

FLAG_PATTERNS: Final[dict[RedFlag, tuple[str, ...]]] = {
    "facial_weakness": (
        r"\b(?:face|facial)(?: is| feels| looks| has| went| gone)?(?: \w+)? weak\w*",
        r"\bweak\w* (?:in|on|of) (?:the |my )?(?:(?:left|right) )?(?:side (?:of )?)?"
        r"(?:(?:the|my) )?(?:face|mouth|cheek|lip|smile)\b",
        r"\bdroop\w*",
        r"\bparal[yi][sz]\w*",
        r"\bpalsy\b",
        r"\bcrooked (?:smile|face|mouth)\b",
        r"\b(?:smile|face|mouth)(?: is| looks)? crooked\b",
        _CANT + r" (?:fully |completely )?(?:close|shut)(?: \w+){0,2} eyes?\b",
        r"\beye(?: ?lid)?s? (?:won t|wont|will not|doesn t|doesnt|does not|can t|cant"
        r"|cannot|isn t|is not) (?:fully |completely )?(?:close|closing|shut)",
        r"\bdebilidad(?: \w+){0,6} (?:cara|rostro|boca|facial)\b",
        r"\b(?:cara|rostro|boca|labio|parpado)(?: \w+){0,2} (?:caid\w*|torcid\w*|debil\w*"
        r"|paraliz\w*|colgad\w*)",
        r"\bse (?:me )?cae (?:la |el )?(?:cara|boca|parpado|labio)\b",
        r"\bno (?:puedo |logro |consigo )?cerrar (?:bien |del todo )?(?:el|mi|los|mis) ojos?\b",
        r"\bojos? no (?:se )?(?:me )?(?:le )?cierra",
    ),
    "hearing_loss": (
        r"\bhearing loss\b",
        r"\blos(?:t|e|ing) (?:my |the |some |all |of )*hearing\b",
        _CANT + r" hear\b",
        r"\bdeaf\w*",
        r"\bhearing (?:is |has |s )?(?:gone|worse|reduced|muffled|decreased|going|bad)\b",
        r"\b(?:muffled|reduced|decreased|less) hearing\b",
        r"\bperdida (?:de |de la |del )?(?:audicion|oido)\b",
        r"\bperdida auditiva\b",
        r"\bperdi (?:la |el )?(?:audicion|oido)\b",
        r"\bno (?:oigo|escucho|puedo oir|puedo escuchar)\b",
        r"\bsord[oa]s?\b",
        r"\bsordera\b",
        r"\b(?:oigo|escucho) (?:menos|mal|poco|nada)\b",
    ),
    "severe_headache": (
        r"\b" + _SEVERE_EN + r"(?: \w+)? " + _HEADACHE_EN,
        r"\b" + _HEADACHE_EN + r"(?: " + _LINK_EN + r")* " + _SEVERE_EN + r"\b",
        r"\b" + _HEADACHE_EN + r"(?: " + _LINK_EN + r")* killing me\b",
        r"\bhead (?:is |s )?killing me\b",
        r"\b" + _SEVERE_ES + r"(?: \w+)? " + _HEADACHE_ES,
        r"\b"
        + _HEADACHE_ES
        + r"(?: "
        + _LINK_ES
        + r")* (?:"
        + _SEVERE_ES_WORDS
        + r"|empeora\w*|aumenta\w*|en aumento)\b",
        r"\bempeora\w*(?: \w+){0,2} " + _HEADACHE_ES,
        r"\b(?:me )?duele (?:mucho|muchisimo|demasiado|horrible|fuerte)(?: \w+)? cabeza\b",
        r"\bcabeza (?:me )?duele (?:mucho|muchisimo|demasiado|horrible|fuerte)\b",
    ),
    "fever": (
        r"\bfever\w*",
        r"\bhigh temp(?:erature)?\b",
        r"\btemp(?:erature)? (?:of |is |was |at |s )?(?:3[89]|4[01]|10[0-5])\b",
        r"\bfiebre\b",
        r"\bcalentura\b",
        r"\bfebril\b",
        r"\btemperatura (?:muy )?(?:alta|elevada)\b",
        r"\btemperatura (?:de |es |esta en )?(?:3[89]|4[01])\b",
    ),
    "clear_fluid": (
        r"\bclear (?:fluid|liquid|discharge|drainage|drip\w*|water\w*|runny)",
        r"\bwatery (?:fluid|discharge|drainage|drip\w*|nose|ear)",
        r"\b(?:fluid|liquid|water)(?: is| s| keeps)? (?:leak\w*|drip\w*|drain\w*|com\w*|run\w*"
        r"|ooz\w*) (?:from|out of|out) (?:of )?(?:my |the )?(?:(?:left|right) )?" + _PLACE_EN,
        r"\b" + _PLACE_EN + r"(?: is| s| keeps)? (?:leak\w*|drip\w*|drain\w*|ooz\w*)",
        r"\b(?:leak\w*|drip\w*|drain\w*|ooz\w*) (?:from|out of) (?:my |the )?"
        r"(?:(?:left|right) )?" + _PLACE_EN + r"\b",
        r"\bliquido (?:claro|transparente|acuoso)\b",
        r"\b(?:sale|salen|sale agua|sale liquido|gotea|gotean|chorrea|escurre|supura|drena)"
        r"(?: \w+){0,3} " + _PLACE_ES + r"\b",
        r"\b" + _PLACE_ES + r"(?: \w+){0,2} (?:gotea|chorrea|escurre|supura|drena|moja)\b",
    ),
    "stiff_neck": (
        r"\bstiff\w* (?:in (?:my |the )?)?neck\b",
        r"\bneck (?:is |s |feels |very |so |really |getting |too )*(?:stiff|rigid)\b",
        _CANT + r" (?:bend|move|turn) (?:my |the )?neck\b",
        r"\bcuello(?: \w+){0,2} (?:rigid[oa]|ties[oa]|duro|agarrotado)\b",
        r"\brigidez(?: \w+){0,3} (?:cuello|nuca)\b",
        r"\bnuca(?: \w+){0,2} (?:rigid[oa]|tiesa|dura)\b",
        r"\bno puedo (?:mover|doblar|girar) (?:el|mi) cuello\b",
    ),
    "repeated_vomiting": (
        r"\bvomiting\b",
        r"\bvomits\b",
        r"\bthrowing up\b",
        r"\bkeep (?:on )?(?:vomit\w*|throwing up|being sick|puking)",
        r"\b(?:vomited|threw up|been sick|puked|vomit) (?:\w+ ){0,2}(?:again|twice|several"
        r"|many|multiple|repeatedly|all (?:day|night)|times|more than once|over and over)\b",
        r"\brepeated(?:ly)? (?:vomit\w*|throwing up|being sick)",
        _CANT + r" stop (?:vomit\w*|throwing up|being sick)",
        r"\bvomitos\b",
        r"\bvomitando\b",
        r"\b(?:vomite|he vomitado|vomito|vomitado) (?:\w+ ){0,2}(?:varias|muchas|otra vez"
        r"|de nuevo|dos|tres|mucho|todo el dia|toda la noche|sin parar|veces)\b",
        r"\bno (?:paro|dejo|puedo dejar) de vomitar\b",
    ),
    "confusion": (
        r"\bconfused\b",
        r"\bconfusion\b",
        r"\bdisorient\w*",
        r"\b(?:don t|dont|do not) know where i am\b",
        _CANT + r" think (?:straight|clearly)\b",
        r"\bnot making (?:any )?sense\b",
        r"\bconfundid[oa]s?\b",
        r"\bdesorientad[oa]s?\b",
        r"\bdesorientacion\b",
        r"\bno se (?:donde|en donde) estoy\b",
    ),
}

_COMPILED: Final[tuple[tuple[RedFlag, re.Pattern[str]], ...]] = tuple(
    (flag, re.compile("|".join(f"(?:{p})" for p in patterns)))
    for flag, patterns in FLAG_PATTERNS.items()
)
RED_FLAGS: Final[tuple[RedFlag, ...]] = tuple(FLAG_PATTERNS)


def normalize(text: str) -> str:
    """Lower case, no accents, words separated by single spaces ("can't" → "can t")."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


def red_flags(note: str | None) -> tuple[RedFlag, ...]:
    """The red flags a note mentions, in the fixed order of ``RED_FLAGS``; () for none."""
    if not note:
        return ()
    return _red_flags(note)


@functools.lru_cache(maxsize=4096)
def _red_flags(note: str) -> tuple[RedFlag, ...]:
    text = normalize(note)
    return tuple(flag for flag, pattern in _COMPILED if pattern.search(text))
