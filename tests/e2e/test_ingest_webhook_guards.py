"""Signed webhooks that must not count, and one that must not be undone: repeated fields,
another account or number, an oversized body (cut to 1,600 characters before parsing), and a
re-enrollment after STOP (consent stays off). On the running stack."""

from __future__ import annotations

import httpx
import pytest
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator

from tests.e2e.conftest import Stack
from tests.e2e.ingest_support import (
    PUBLIC_BASE_URL,
    TWILIO_AUTH_TOKEN,
    TopicWatch,
    enroll,
    error_code,
    inbound_form,
    sign,
)


async def post_pairs(
    client: httpx.AsyncClient, path: str, pairs: list[tuple[str, str]]
) -> httpx.Response:
    """A signed form post that may repeat a field (a dict cannot)."""
    validator = RequestValidator(TWILIO_AUTH_TOKEN)
    # Twilio's validator signs each value of a repeated key, sorted, after the key.
    signature = validator.compute_signature(PUBLIC_BASE_URL + path, ImmutableMultiDict(pairs))
    body = httpx.QueryParams(pairs)
    return await client.post(
        path,
        content=str(body).encode(),
        headers={
            "Authorization": "",
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


async def test_a_repeated_field_is_refused_and_nothing_is_published(
    stack: Stack, watch: TopicWatch
) -> None:
    patient = await enroll(stack)
    await watch.mark()
    form = inbound_form(patient["phone"], "1")
    pairs = [*form.items(), ("Body", "my face is drooping")]
    r = await post_pairs(stack.ingest, "/v1/twilio/inbound", pairs)
    assert r.status_code == 422, r.text
    assert error_code(r) == "invalid_fields"
    assert r.json()["error"]["fields"] == [{"field": "Body", "message": "appears more than once"}]
    assert await watch.records(patient["patient_id"]) == []


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [("AccountSid", "AC" + "9" * 32, "wrong_account"), ("To", "+15550009999", "wrong_number")],
)
async def test_another_account_or_number_is_403(
    stack: Stack, watch: TopicWatch, field: str, value: str, code: str
) -> None:
    patient = await enroll(stack)
    await watch.mark()
    form = {**inbound_form(patient["phone"], "2"), field: value}
    path = "/v1/twilio/inbound"
    r = await stack.ingest.post(
        path, data=form, headers={"Authorization": "", "X-Twilio-Signature": sign(path, form)}
    )
    assert r.status_code == 403, r.text
    assert error_code(r) == code
    assert await watch.records(patient["patient_id"]) == []


async def test_an_oversized_body_is_cut_before_parsing(stack: Stack, watch: TopicWatch) -> None:
    patient = await enroll(stack)
    await watch.mark()
    body = "my face is drooping " + "2 " * 20_000  # 40 KB: once 22 s of parsing
    form = inbound_form(patient["phone"], body)
    path = "/v1/twilio/inbound"
    r = await stack.ingest.post(
        path, data=form, headers={"Authorization": "", "X-Twilio-Signature": sign(path, form)}
    )
    assert r.status_code == 200, r.text
    [record] = await watch.records(patient["patient_id"])
    note = record.value["payload"]["note"]
    assert note.startswith("my face is drooping")  # the red flag is kept
    assert len(note) <= 1000


async def test_re_enrolling_after_stop_keeps_consent_off(stack: Stack, watch: TopicWatch) -> None:
    patient = await enroll(stack)
    path = "/v1/twilio/inbound"
    form = inbound_form(patient["phone"], "STOP")
    r = await stack.ingest.post(
        path, data=form, headers={"Authorization": "", "X-Twilio-Signature": sign(path, form)}
    )
    assert r.status_code == 200, r.text
    await watch.mark()
    again = await stack.ingest.post("/v1/patients", json={**patient, "baseline_severity": 2})
    assert again.status_code == 202, again.text
    [record] = await watch.records(patient["patient_id"])
    assert record.value["type"] == "patient.enrolled"
    assert record.value["payload"]["baseline_severity"] == 2
    assert record.value["payload"]["sms_consent"] is False  # only START turns it back on
