"""No error stalls a partition: outages are retried, anything else is isolated to its input.

The batch here is applied as the assessor applies it (the real rules, then the read model,
then the decisions, then the state); the read-model step fails repeatably for one patient,
after ``decide`` has run for it.
"""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError
from faust.exceptions import ProducerSendError

from assessor import projection
from assessor.batches import apply_until_done, run_until_done
from assessor.domain import (
    Decision,
    Enrolled,
    Input,
    PatientState,
    Report,
    Reported,
    decide,
)
from shared.errors import describe
from shared.events import SendNotificationPayload
from shared.transient import is_transient
from tests.unit.rules_kit import PHONE, SURGERY, at_local, new_id, profile

NOW = at_local("America/Chicago", SURGERY, 10)  # enrolled at 09:00 that day: no prompt due
Work = tuple[str, Input, dt.datetime]


class Assessor:
    """The assessor's batch steps over in-memory stores, with one fault to inject."""

    def __init__(self, fails: str | None = None, outages: int = 0) -> None:
        self.states: dict[str, PatientState] = {}
        self.read_model: dict[str, dict[str, object]] = {}
        self.sent: list[tuple[str, SendNotificationPayload]] = []
        self.fails = fails  # this patient's read-model row is refused, every time
        self.outages = outages  # the first calls fail as the database being down does
        self.calls = 0

    async def apply(self, work: list[Work], rejected: dict[int, Exception]) -> int:
        self.calls += 1
        rejected.clear()
        decided: dict[str, Decision] = {}
        for i, (pid, inp, now) in enumerate(work):
            state = decided[pid].state if pid in decided else self.states.get(pid)
            try:
                decided[pid] = decide(state or PatientState(patient_id=pid), inp, now)
            except Exception as exc:
                rejected[i] = exc
        if self.outages > 0:
            self.outages -= 1
            raise ConnectionRefusedError("connection refused")
        views = {pid: projection.recovery_view(d) for pid, d in decided.items()}
        if self.fails in views:
            raise ValueError(f"row refused for {PHONE}")  # quotes the input, as drivers do
        self.read_model.update({pid: v for pid, v in views.items() if v is not None})
        commands = [(pid, c) for pid, d in decided.items() for c in d.commands]
        self.sent.extend(commands)
        self.states.update({pid: d.state for pid, d in decided.items()})
        return len(commands)


async def no_sleep(delay: float) -> None:
    assert delay > 0


def enrolled(pid: str) -> Work:
    return (pid, Enrolled(profile()), at_local("America/Chicago", SURGERY, 10, 9))


def reported(pid: str, severity: int) -> Work:
    report = Report(event_id=new_id(), occurred_at=NOW, severity=severity)
    return (pid, Reported(report), NOW)


async def test_a_repeatable_error_after_decide_rejects_only_its_input() -> None:
    assessor = Assessor()
    await apply_until_done(assessor.apply, [enrolled("p-bad"), enrolled("p-next")], {})
    assessor.fails = "p-bad"
    rejected: dict[int, Exception] = {}
    work = [reported("p-bad", 2), reported("p-next", 2)]
    sent = await apply_until_done(assessor.apply, work, rejected, sleep=no_sleep)
    # The next patient's report went through: state, read model and its reassurance.
    assert [r.severity for r in assessor.states["p-next"].reports] == [2]
    assert assessor.read_model["p-next"]["latest_severity"] == 2
    assert [c.kind for pid, c in assessor.sent if pid == "p-next"] == ["reassurance"]
    assert sent == 1
    # The failing one is rejected, by its index, and nothing of it was kept.
    assert list(rejected) == [0]
    assert assessor.states["p-bad"].reports == ()
    assert not any(pid == "p-bad" for pid, c in assessor.sent)
    # The batch, then each input alone: a bounded number of attempts, not a retry loop.
    assert assessor.calls == 1 + 1 + 2
    reason = describe(rejected[0])
    assert reason.startswith("ValueError at ")
    assert PHONE not in reason


async def test_an_outage_is_retried_until_the_batch_goes_through() -> None:
    assessor = Assessor()
    await apply_until_done(assessor.apply, [enrolled("p-1"), enrolled("p-2")], {})
    assessor.outages = 3
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    rejected: dict[int, Exception] = {}
    work = [reported("p-1", 2), reported("p-2", 2)]
    assert await apply_until_done(assessor.apply, work, rejected, sleep=sleep) == 2
    assert rejected == {}
    assert slept == [0.1, 0.2, 0.4]  # backoff, doubling
    assert [len(s.reports) for s in assessor.states.values()] == [1, 1]


async def test_an_error_inside_decide_stays_with_its_input() -> None:
    assessor = Assessor()
    await apply_until_done(assessor.apply, [enrolled("p-1")], {})
    naive = ("p-1", Reported(Report(event_id=new_id(), occurred_at=NOW, severity=1)), NOW)
    work = [(naive[0], naive[1], NOW.replace(tzinfo=None)), reported("p-1", 2)]
    rejected: dict[int, Exception] = {}
    await apply_until_done(assessor.apply, work, rejected, sleep=no_sleep)
    assert list(rejected) == [0]
    assert isinstance(rejected[0], ValueError)
    assert [r.severity for r in assessor.states["p-1"].reports] == [2]
    assert assessor.calls == 2  # decided once: no retry, no isolation needed


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (KafkaConnectionError(), True),
        (asyncpg.exceptions.CannotConnectNowError(), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError(), True),
        (ValueError(), False),
        (KeyError(), False),
        (asyncpg.exceptions.DataError(), False),
        (asyncpg.exceptions.UniqueViolationError(), False),
    ],
)
def test_which_errors_are_outages(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_a_wrapped_broker_error_is_an_outage() -> None:
    wrapped = ProducerSendError("Error while sending")
    wrapped.__cause__ = KafkaConnectionError()  # as ``raise ... from exc`` sets it
    assert is_transient(wrapped)
    assert not is_transient(ProducerSendError("no cause"))


async def test_a_step_is_retried_through_an_outage_and_returns_nothing() -> None:
    calls: list[int] = []

    async def step() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("connection refused")

    assert await run_until_done(step, sleep=no_sleep) is None
    assert len(calls) == 3


async def test_a_step_that_fails_otherwise_is_returned_at_once_not_retried() -> None:
    calls: list[int] = []

    async def step() -> None:
        calls.append(1)
        raise ValueError("a bug: the same every time")

    failed = await run_until_done(step, sleep=no_sleep)
    assert isinstance(failed, ValueError)
    assert len(calls) == 1  # the partition is not held behind it
