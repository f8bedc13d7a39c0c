"""Errors and log references that carry no patient data (dead-letter reasons, log lines)."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from shared.errors import describe
from shared.logs import DEV_LOG_REF_KEY, patient_ref, set_ref_key

PHONE = "+15551239876"


class Enrollment(BaseModel):
    phone: str
    severity: int

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str) -> str:
        raise ValueError(f"{value} is not a valid phone number")


def test_validation_error_names_fields_and_types_never_values() -> None:
    with pytest.raises(ValidationError) as caught:
        Enrollment.model_validate({"phone": PHONE, "severity": "four " + PHONE})
    assert PHONE in str(caught.value)  # pydantic's own message quotes the input ...
    reason = describe(caught.value)
    assert PHONE not in reason  # ... ours does not
    assert "phone: value_error" in reason
    assert "severity: int_parsing" in reason
    assert reason.startswith("ValidationError (Enrollment)")


def test_other_errors_give_type_and_location_not_message() -> None:
    def parse(text: str) -> None:
        raise ValueError(f"cannot parse {text}")

    try:
        parse(PHONE)
    except ValueError as exc:
        reason = describe(exc)
    assert PHONE not in reason
    assert reason.startswith("ValueError at test_errors.py:")
    assert reason.endswith("in parse")


def test_error_never_raised_has_only_its_type() -> None:
    assert describe(KeyError(PHONE)) == "KeyError"


def test_patient_ref_is_keyed() -> None:
    try:
        set_ref_key("k" * 32)
        first = patient_ref("p-000123")
        set_ref_key("j" * 32)
        second = patient_ref("p-000123")
    finally:
        set_ref_key(DEV_LOG_REF_KEY)
    assert first != second, "the reference depends on the key"
    unkeyed = {hashlib.blake2b(b"p-000123", digest_size=n).hexdigest() for n in (6, 8)}
    assert first not in unkeyed
    assert len(first) == 16
