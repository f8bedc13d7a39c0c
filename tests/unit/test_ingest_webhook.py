"""The checks on a signed Twilio webhook before anything reads it (ingest/webhook.py): one
value per field, our account and number, and a body cut to 1,600 characters — so the reply
parser never sees more, whatever a caller sends (a hypothesis run over long random bodies)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import ImmutableMultiDict

from ingest import sms_parser
from ingest.webhook import MAX_BODY_CHARS, capped_body, check_form
from shared.web import ApiError

ACCOUNT = "AC" + "1" * 32
OURS = frozenset({"+15005550006"})


def form(*pairs: tuple[str, str]) -> ImmutableMultiDict[str, str]:
    return ImmutableMultiDict(list(pairs))


def refused(f: ImmutableMultiDict[str, str], *, inbound: bool = True) -> ApiError:
    with pytest.raises(ApiError) as info:
        check_form(f, account_sid=ACCOUNT, our_numbers=OURS, inbound=inbound)
    return info.value


def test_a_well_formed_webhook_passes() -> None:
    check_form(
        form(("AccountSid", ACCOUNT), ("To", "+15005550006"), ("Body", "2")),
        account_sid=ACCOUNT,
        our_numbers=OURS,
        inbound=True,
    )


def test_repeated_fields_are_refused() -> None:
    error = refused(form(("Body", "2"), ("From", "+15551230001"), ("Body", "STOP")))
    assert (error.status, error.code) == (422, "invalid_fields")
    assert error.fields == [{"field": "Body", "message": "appears more than once"}]


def test_another_account_or_number_is_refused() -> None:
    assert refused(form(("AccountSid", "AC" + "2" * 32))).code == "wrong_account"
    assert refused(form(("AccountSid", ACCOUNT), ("To", "+15550009999"))).code == "wrong_number"
    # A status callback's To is the recipient, not our number.
    check_form(
        form(("AccountSid", ACCOUNT), ("To", "+15550009999")),
        account_sid=ACCOUNT,
        our_numbers=OURS,
        inbound=False,
    )


def test_bodies_are_cut_to_twilios_limit() -> None:
    assert capped_body("x" * 60_000) == "x" * MAX_BODY_CHARS
    assert capped_body("2") == "2"


long_bodies = st.text(
    alphabet=st.sampled_from("0123456789 ,./:-abcdefghijklmnopqrstuvwxyz severo mild ACK"),
    min_size=1_000,
    max_size=20_000,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(long_bodies)
def test_any_long_body_parses_within_the_cap(body: str) -> None:
    capped = capped_body(body)
    assert len(capped) <= MAX_BODY_CHARS
    reply = sms_parser.parse_reply(capped)
    note = getattr(reply, "note", None)
    assert note is None or len(note) <= sms_parser.MAX_NOTE
