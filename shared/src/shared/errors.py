"""Describe an error without the input that caused it.

Dead-letter headers, logs and API error bodies need to say *why* something was refused,
but an exception's own message often quotes the input: pydantic's ``ValidationError``
renders ``input_value='+15551230001'``, a ``ValueError`` from a validator may name the phone
it refused. ``describe`` keeps what locates the fault (the error's type, the field path, the
code location) and drops every value.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from pydantic import ValidationError

_MAX_FIELDS = 10


def describe(exc: BaseException) -> str:
    """``"<ExceptionType> at <file>:<line> in <function>"``, and for a pydantic
    ``ValidationError`` the failing fields as ``<loc>: <error type>`` — never a value."""
    name = type(exc).__name__
    if isinstance(exc, ValidationError):
        fields = [
            f"{'.'.join(str(part) for part in err['loc']) or '(root)'}: {err['type']}"
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        more = len(fields) - _MAX_FIELDS
        shown = "; ".join(fields[:_MAX_FIELDS]) + (f"; and {more} more" if more > 0 else "")
        return f"{name} ({exc.title}): {shown}"
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return name
    last = frames[-1]
    return f"{name} at {Path(last.filename).name}:{last.lineno} in {last.name}"
