"""The recovery phases, in the order a course runs: the assessor decides them, the console
lists and filters by them (the recovery-rules page says what each one means)."""

from __future__ import annotations

from typing import Literal, get_args

Phase = Literal[
    "pre_op",
    "early_postop",
    "expected_window",
    "persistent",
    "late_follow_up",
    "remission",
    "monitoring_complete",
]
PHASES: tuple[Phase, ...] = get_args(Phase)
