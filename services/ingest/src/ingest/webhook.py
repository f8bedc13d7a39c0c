"""Checks on a Twilio webhook's form once its signature is proven, before anything reads it:
one value per field, the account and the number it was sent to are ours, and a text body
no longer than Twilio's own limit (a parser never sees more)."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import ImmutableMultiDict

from shared.web import ApiError

#: Twilio's limit for a message body (10 segments); anything longer is cut before parsing.
MAX_BODY_CHARS = 1600


def capped_body(body: str) -> str:
    return body[:MAX_BODY_CHARS]


def check_form(
    form: ImmutableMultiDict[str, str],
    *,
    account_sid: str,
    our_numbers: Iterable[str],
    inbound: bool,
) -> None:
    """Refuse a signed webhook that repeats a field (which value would count?), names
    another Twilio account, or (inbound) was sent to a number that is not ours. Twilio
    always sends ``AccountSid`` and ``To``; they are checked when present."""
    keys = [k for k, _ in form.multi_items()]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ApiError(
            422,
            "invalid_fields",
            "Some fields are repeated.",
            [{"field": k, "message": "appears more than once"} for k in repeated],
        )
    sent_account = form.get("AccountSid")
    if sent_account is not None and sent_account != account_sid:
        raise ApiError(403, "wrong_account", "The webhook names another Twilio account.")
    to = form.get("To")
    numbers = {n for n in our_numbers if n}
    if inbound and to is not None and numbers and to not in numbers:
        raise ApiError(
            403, "wrong_number", "The text was sent to a number this service does not use."
        )
