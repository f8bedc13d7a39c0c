"""Structured JSON logs. Never log a phone number or a message body; use ``patient_ref``."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import sys
from typing import Any

_NOISY = ("aiokafka", "kafka", "uvicorn.access")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


#: The development key; settings refuse it off loopback, like the development API token.
DEV_LOG_REF_KEY = "dev-log-ref-key-change-me"
_ref_key: list[bytes] = [DEV_LOG_REF_KEY.encode()]


def set_ref_key(key: str) -> None:
    """The secret behind ``patient_ref`` (``LOG_REF_KEY``), set once by each entrypoint."""
    _ref_key[0] = key.encode()


def patient_ref(patient_id: str) -> str:
    """A short stable reference to a patient id, for correlating log lines.

    A keyed HMAC, not a plain hash: patient ids are guessable (``p-000123``), and an
    unkeyed hash of them is reversed by hashing every candidate (a million in 0.02 s).
    Every service of one deployment shares the key, so the reference correlates across them.
    """
    return hmac.new(_ref_key[0], patient_id.encode(), hashlib.sha256).hexdigest()[:16]


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def logging_config(service: str, level: str = "INFO") -> dict[str, Any]:
    """The same JSON logging as a ``logging.config.dictConfig`` dict (for faust's
    ``App(logging_config=...)``, which otherwise installs its own coloured text format)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "service": service}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
        "loggers": {name: {"level": "WARNING"} for name in _NOISY},
    }


def configure_logging(service: str, level: str = "INFO", ref_key: str | None = None) -> None:
    if ref_key is not None:
        set_ref_key(ref_key)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
