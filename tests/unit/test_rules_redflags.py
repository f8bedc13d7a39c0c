"""The red-flag phrase matcher: English and Spanish, true and false positives."""

from __future__ import annotations

import pytest

from assessor.rules import RED_FLAGS, red_flags


@pytest.mark.parametrize(
    ("note", "flags"),
    [
        # facial weakness / droop / can't close the eye
        ("The left side of my face is drooping since this evening", ("facial_weakness",)),
        ("my face feels weak", ("facial_weakness",)),
        ("weakness on the right side of my face", ("facial_weakness",)),
        ("I CAN'T close my left eye", ("facial_weakness",)),
        ("cannot fully close the eye", ("facial_weakness",)),
        ("my eye won't close", ("facial_weakness",)),
        ("smile is crooked", ("facial_weakness",)),
        ("tengo la cara caída", ("facial_weakness",)),
        ("Debilidad en el lado izquierdo de la cara", ("facial_weakness",)),
        ("no puedo cerrar el ojo", ("facial_weakness",)),
        ("el ojo no me cierra", ("facial_weakness",)),
        ("parálisis facial", ("facial_weakness",)),
        # hearing loss
        ("new hearing loss on the left", ("hearing_loss",)),
        ("I cant hear in my right ear", ("hearing_loss",)),
        ("lost my hearing", ("hearing_loss",)),
        ("Perdí la audición del oído derecho", ("hearing_loss",)),
        ("no oigo bien de este lado", ("hearing_loss",)),
        ("pérdida de audición", ("hearing_loss",)),
        # severe or worsening headache
        ("severe headache", ("severe_headache",)),
        ("worst headache of my life", ("severe_headache",)),
        ("my headache is getting worse", ("severe_headache",)),
        ("headache keeps getting worse", ("severe_headache",)),
        ("dolor de cabeza muy fuerte", ("severe_headache",)),
        ("el peor dolor de cabeza de mi vida", ("severe_headache",)),
        ("fuerte dolor de cabeza", ("severe_headache",)),
        ("el dolor de cabeza empeora", ("severe_headache",)),
        ("me duele mucho la cabeza", ("severe_headache",)),
        # fever
        ("I have a fever", ("fever",)),
        ("feverish tonight", ("fever",)),
        ("temperature of 39", ("fever",)),
        ("temp 101", ("fever",)),
        ("tengo FIEBRE", ("fever",)),
        ("calentura", ("fever",)),
        # clear fluid from nose, ear or wound
        ("clear fluid dripping from my nose", ("clear_fluid",)),
        ("water is leaking from my ear", ("clear_fluid",)),
        ("the wound is draining", ("clear_fluid",)),
        ("me sale agua por la nariz", ("clear_fluid",)),
        ("líquido claro de la herida", ("clear_fluid",)),
        ("la herida supura", ("clear_fluid",)),
        # stiff neck
        ("stiff neck", ("stiff_neck",)),
        ("my neck is very stiff", ("stiff_neck",)),
        ("can't bend my neck", ("stiff_neck",)),
        ("cuello rígido", ("stiff_neck",)),
        ("rigidez en el cuello", ("stiff_neck",)),
        # repeated vomiting
        ("vomiting since morning", ("repeated_vomiting",)),
        ("threw up twice", ("repeated_vomiting",)),
        ("I keep throwing up", ("repeated_vomiting",)),
        ("vómitos", ("repeated_vomiting",)),
        ("sigo vomitando", ("repeated_vomiting",)),
        ("vomité varias veces", ("repeated_vomiting",)),
        # confusion
        ("he seems confused", ("confusion",)),
        ("disoriented this morning", ("confusion",)),
        ("estoy confundida", ("confusion",)),
        ("no sé dónde estoy", ("confusion",)),
        # several at once, in the fixed order
        ("tengo fiebre y el cuello rígido", ("fever", "stiff_neck")),
        ("fever, stiff neck and a bad headache", ("severe_headache", "fever", "stiff_neck")),
        # a mention is a mention: negation is not interpreted (see the module docstring)
        ("no fever", ("fever",)),
        ("sin fiebre", ("fever",)),
        ("no severe headache", ("severe_headache",)),
        # false positives the matcher avoids
        ("headache", ()),
        ("a bit of a headache today", ()),
        ("dolor de cabeza leve", ()),
        ("me duele la cabeza", ()),
        ("twitching is worse, also a headache", ()),
        ("twitching 2, worse today", ()),
        ("threw up once after dinner", ()),
        ("vomité", ()),
        ("my eye twitches and closes by itself", ()),
        ("hearing is fine", ()),
        ("clear skies, feeling good", ()),
        ("nose is fine", ()),
        ("", ()),
        (None, ()),
    ],
)
def test_red_flags(note: str | None, flags: tuple[str, ...]) -> None:
    assert red_flags(note) == flags


def test_every_flag_has_a_code() -> None:
    assert RED_FLAGS == (
        "facial_weakness",
        "hearing_loss",
        "severe_headache",
        "fever",
        "clear_fluid",
        "stiff_neck",
        "repeated_vomiting",
        "confusion",
    )
