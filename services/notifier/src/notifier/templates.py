"""Message wording, per kind and language: plain words for a frightened patient, and short,
complete pages for a busy clinician.

Rendering is tolerant: the assessor's ``facts`` may lack any key (``day``, ``severity``,
``baseline_severity``, ``rule``, ``alert_kind``, ``evidence``, ``patient_id``); whatever is
missing is left out of the text, never an error. Only an unknown ``kind`` raises
``KeyError`` (the decision is then dead-lettered).

Wording is kept inside GSM-7 where the language allows (Spanish written without á, í, ó, ú
stays GSM-7: é, ñ, ü, ¿ and ¡ are in its basic set), so a text fits two segments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.events import NotificationKind
from shared.notification_kinds import KINDS, PAGE_KINDS, PATIENT_KINDS

LANGUAGES = ("en", "es")

#: Appended to the first text a phone ever gets from the service (Twilio's keywords).
FIRST_TEXT_FOOTER = {
    "en": "Reply STOP to opt out, HELP for help.",
    "es": "Responda STOP para darse de baja, HELP para ayuda.",
}


@dataclass(frozen=True)
class Facts:
    """What a template may use; every fact is optional."""

    clinic: str
    values: Mapping[str, object]

    def get(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None:
            return None
        text = " ".join(str(value).split())  # one line, no stray whitespace
        return text or None


def _join(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


def _fmt(template: str, value: str | None) -> str | None:
    return template.format(value) if value is not None else None


# --- patient messages ----------------------------------------------------------------------


#: The patient messages' words, per kind and language (``{clinic}`` is the clinic's name);
#: ``care_team_notified`` has its own words after a red flag (call 911 now).
_PATIENT_TEXTS: dict[str, dict[str, str]] = {
    "checkin_prompt": {
        "en": (
            "{clinic}: how is your twitching today? Reply with one number: 0 none, 1 only when "
            "triggered (light, stress), 2 mild, 3 moderate, 4 severe (stops you reading or "
            "driving)."
        ),
        "es": (
            "{clinic}: ¿qué tal el espasmo hoy? Responda con una cifra: 0 nada, 1 solo si algo "
            "lo provoca (luz, estrés), 2 leve, 3 moderado, 4 grave (le impide leer o conducir)."
        ),
    },
    "reassurance": {
        "en": (
            "{clinic}: thanks for your update. Twitching that goes on after MVD is common "
            "(about 3 in 10) and does not mean the surgery failed. The nerve heals slowly; most"
            " improve between 3 and 6 months. Call us if it gets worse or anything new starts."
        ),
        "es": (
            "{clinic}: gracias por su mensaje. Es frecuente que el espasmo siga tras la MVD (a "
            "unas 3 de cada 10) y no significa que haya fallado. El nervio sana despacio; casi "
            "todos mejoran entre 3 y 6 meses. Llame si empeora o nota algo nuevo."
        ),
    },
    "remission_congrats": {
        "en": (
            "{clinic}: wonderful news! Your replies show two weeks with no twitching. We are so"
            " glad for you. We will still check in now and then until one year after surgery."
        ),
        "es": (
            "{clinic}: ¡muy buena noticia! Sus respuestas muestran dos semanas sin espasmo. Nos"
            " alegramos mucho por usted. Le seguiremos escribiendo de vez en cuando hasta "
            "cumplir un año de la MVD."
        ),
    },
    "care_team_notified": {
        "en": (
            "{clinic}: thank you for your update. We have let your care team know; they will "
            "review it and call you if needed. If things suddenly get worse, call the clinic."
        ),
        "es": (
            "{clinic}: gracias por su mensaje. Hemos avisado a su equipo de cuidados; lo van a "
            "revisar y le llamaremos si hace falta. Si empeora de repente, llame a la consulta."
        ),
    },
    "care_team_notified:red_flag": {
        "en": (
            "{clinic}: from what you told us, we have paged your care team and they will call "
            "you soon. If you feel very unwell (face drooping, bad headache, fever, stiff "
            "neck), call 911 or go to the emergency room now."
        ),
        "es": (
            "{clinic}: por lo que nos cuenta, hemos avisado a su equipo de guardia y le van a "
            "llamar pronto. Si se encuentra muy mal (debilidad en la cara, dolor de cabeza "
            "fuerte, fiebre, rigidez de cuello), llame al 911 o vaya a urgencias ya."
        ),
    },
    "monitoring_complete": {
        "en": (
            "{clinic}: today is one year since your MVD surgery, and our text check-ins end "
            "here. Thank you for keeping us updated. If twitching comes back or anything "
            "worries you, call us any time."
        ),
        "es": (
            "{clinic}: hoy se cumple un año de su MVD y terminan nuestros mensajes de control. "
            "Gracias por mantenernos al tanto. Si el espasmo vuelve o algo le preocupa, llame "
            "cuando quiera."
        ),
    },
}


def _patient(kind: str) -> Callable[[Facts, str], str]:
    def render_patient(f: Facts, lang: str) -> str:
        key = f"{kind}:red_flag" if f.get("alert_kind") == "red_flag" else kind
        return _PATIENT_TEXTS.get(key, _PATIENT_TEXTS[kind])[lang].format(clinic=f.clinic)

    return render_patient


# --- care-team pages ------------------------------------------------------------------------

_HEADLINES: dict[str, dict[str, str]] = {
    "six_month_persistence": {
        "en": "twitching persists past 6 months",
        "es": "el espasmo sigue pasados 6 meses",
    },
    "worsening": {"en": "twitching is worsening", "es": "el espasmo empeora"},
    "recurrence": {
        "en": "twitching is back after remission",
        "es": "el espasmo ha vuelto tras remitir",
    },
    "red_flag": {
        "en": "possible complication reported",
        "es": "el paciente describe signos de alarma",
    },
    "lost_to_follow_up": {
        "en": "no reply to 3 check-ins",
        "es": "sin respuesta a 3 controles",
    },
}


def _page(kind: NotificationKind) -> Callable[[Facts, str], str]:
    def render_page(f: Facts, lang: str) -> str:
        es = lang == "es"
        headline = _HEADLINES[kind]["es" if es else "en"]
        if KINDS[kind].urgency == "urgent":
            label = "URGENTE" if es else "URGENT"
        else:
            label = "Aviso" if es else "Alert"
        step = f.get("escalation_step")
        reminder = None
        if step and step != "0":
            reminder = f"Sin ACK, aviso {step}." if es else f"No ACK yet, reminder {step}."
        severity = f.get("severity")
        baseline = f.get("baseline_severity")
        if severity and baseline:
            grade = (
                f"grado {severity} (antes {baseline})"
                if es
                else f"grade {severity} (pre-op {baseline})"
            )
        elif severity:
            grade = f"grado {severity}" if es else f"grade {severity}"
        elif baseline:
            grade = f"antes {baseline}" if es else f"pre-op grade {baseline}"
        else:
            grade = None
        patient = _join(
            _fmt("Paciente {}" if es else "Patient {}", f.get("patient_id")),
            _fmt("(D+{})" if es else "day {}", f.get("day")),
        )
        detail = ", ".join(p for p in (patient, grade) if p)
        return _join(
            f"{f.clinic} {label}: {headline}.",
            reminder,
            _fmt("Regla {}." if es else "Rule {}.", f.get("rule")),
            f"{detail}." if detail else None,
            _fmt("Informes: {}." if es else "Reports: {}.", f.get("evidence")),
            _fmt("Responda ACK {}" if es else "Reply ACK {}", f.get("ack_code")),
        )

    return render_page


#: One template per kind of ``shared.notification_kinds.KINDS`` (a unit test checks both).
TEMPLATES: dict[str, Callable[[Facts, str], str]] = {
    **{kind: _patient(kind) for kind in PATIENT_KINDS},
    **{kind: _page(kind) for kind in PAGE_KINDS},
}


def render(
    kind: str,
    language: str,
    facts: Mapping[str, object],
    clinic: str,
    *,
    ack_code: str | None = None,
    escalation_step: int = 0,
) -> str:
    """The text for one notification; ``KeyError`` only for an unknown ``kind``."""
    template = TEMPLATES[kind]
    values = dict(facts)
    if ack_code:
        values["ack_code"] = ack_code
    if escalation_step:
        values["escalation_step"] = escalation_step
    return template(
        Facts(clinic=clinic, values=values), language if language in LANGUAGES else "en"
    )


def with_first_text_footer(body: str, language: str) -> str:
    """The first text to a phone also says how to stop and how to get help."""
    footer = FIRST_TEXT_FOOTER.get(language, FIRST_TEXT_FOOTER["en"])
    return body if body.endswith(footer) else f"{body} {footer}"


# --- SMS segments -----------------------------------------------------------------------------

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


def is_gsm7(body: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in body)


def segments(body: str) -> int:
    """SMS segments: GSM-7 160 (153 per part, extension characters count twice), else
    UCS-2 70 (67 per part, characters outside the BMP count twice)."""
    if is_gsm7(body):
        units = sum(2 if c in GSM7_EXTENDED else 1 for c in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)
