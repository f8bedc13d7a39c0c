"""Schemathesis against the live ingest: generated and mutated requests for every
operation in ``/openapi.json``, authenticated with the stack's token. No 5xx, and every
answer as documented (status, content type, body schema), plus schemathesis' other
default checks (auth not ignored, negative data rejected, 405 for other methods, …).

The schema is loaded at collection (schemathesis' lazy ``from_fixture`` loader does not
work with this pytest); when ingest cannot be reached, one failing test says so.
"""

from __future__ import annotations

import os

import pytest
import schemathesis

from tests.e2e.conftest import _token
from tests.e2e.ingest_support import stack_is_simulated

INGEST = f"http://127.0.0.1:{os.environ.get('INGEST_PORT', 8080)}"
#: Per operation and phase; five operations keep the whole run well under a minute.
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50"))


def _load() -> schemathesis.BaseSchema | str:
    try:
        schema = schemathesis.openapi.from_url(f"{INGEST}/openapi.json", wait_for_schema=10)
    except Exception as exc:  # the stack is not running: say so in one test
        return f"{type(exc).__name__}: {exc}"
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)
    # Schema-valid is not always valid: some rules cannot be written in JSON Schema (a
    # phone number that fits its country's plan, a surgery date within two years of the
    # clock, an occurred_at not in the future). Those answer 422 with the field named; the
    # status code, content type and body conformance checks still hold them to the schema.
    acceptance = schema.config.checks.positive_data_acceptance
    acceptance.expected_statuses = [*acceptance.expected_statuses, "422"]
    if stack_is_simulated():
        # A generated `now` would fling the shared simulated clock years ahead (it never
        # comes back); the clock endpoint has its own tests.
        schema = schema.exclude(path="/v1/clock", method="POST")
    return schema


_SCHEMA = _load()

if isinstance(_SCHEMA, str):

    def test_ingest_conforms_to_its_openapi() -> None:
        pytest.fail(f"could not load {INGEST}/openapi.json: {_SCHEMA}")

else:

    @_SCHEMA.parametrize()
    def test_ingest_conforms_to_its_openapi(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {_token()}"}, timeout=15)
