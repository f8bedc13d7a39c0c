"""The red-flag phrase patterns, per category, in English and Spanish: the data the matcher
in ``redflags`` reads (how a text is read, and what negates a mention, is said there).

Patterns are regular expressions over folded words (lower case, no accents, no punctuation).
A pattern containing ``NEG`` carries its own negation, so a "not" inside its match does not
negate it. Add a paraphrase here, then a labelled line to ``tests/corpus/`` (``make corpus``).
"""

from __future__ import annotations

from typing import Final

RedFlag = str


def words(text: str) -> frozenset[str]:
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
