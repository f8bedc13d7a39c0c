"""JSON logs: the faust worker's dictConfig gives the same format as the other services."""

from __future__ import annotations

import io
import json
import logging
import logging.config

from shared.logs import JsonFormatter, logging_config, patient_ref


def test_logging_config_writes_json_with_event_id_and_hashed_patient() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("aiokafka").level)
    try:
        check_json_logs()
    finally:
        root.handlers[:], level, kafka_level = saved
        root.setLevel(level)
        logging.getLogger("aiokafka").setLevel(kafka_level)


def check_json_logs() -> None:
    config = logging_config("assessor", "info")
    logging.config.dictConfig(config)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler.formatter, JsonFormatter)
    out = io.StringIO()
    handler.setStream(out)  # type: ignore[attr-defined]
    logging.getLogger("assessor.app").info(
        "event applied", extra={"event_id": "e-1", "patient": patient_ref("p-001")}
    )
    line = json.loads(out.getvalue())
    assert line["service"] == "assessor"
    assert line["msg"] == "event applied"
    assert line["event_id"] == "e-1"
    assert line["patient"] == patient_ref("p-001") != "p-001"
    assert logging.getLogger("aiokafka").level == logging.WARNING
