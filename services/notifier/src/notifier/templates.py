"""Message wording, per kind and language. Plain words for a frightened patient."""

from __future__ import annotations

from collections.abc import Mapping

TEMPLATES: dict[str, dict[str, str]] = {
    "reassurance": {
        "en": (
            "{clinic}: thank you for your update. Twitching that continues after MVD surgery is "
            "common (about 3 in 10 people) and is not a sign the operation failed. The nerve "
            "heals slowly; most people improve between 3 and 6 months. Call us if it gets "
            "worse or you notice anything new."
        ),
        "es": (
            "{clinic}: gracias por su mensaje. Es común que los espasmos sigan después de la "
            "cirugía MVD (a unas 3 de cada 10 personas) y no significa que la operación "
            "fallara. El nervio sana despacio; la mayoría mejora entre los 3 y 6 meses. "
            "Llámenos si empeora o nota algo nuevo."
        ),
    },
}


def render(kind: str, language: str, facts: Mapping[str, object], clinic: str) -> str:
    template = TEMPLATES[kind].get(language) or TEMPLATES[kind]["en"]
    return template.format(clinic=clinic, **{k: v for k, v in facts.items() if k != "clinic"})
