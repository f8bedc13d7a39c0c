"""The loop supervisor: a loop that raises is logged and restarted with back-off, a loop
that stops beating is reported stale, and a beat outside a supervisor does nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from shared.supervisor import Supervisor, beat


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def test_a_crashing_loop_is_logged_and_restarted_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []
    done = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise RuntimeError("boom with +15551230001 in it")
        while True:
            beat()
            done.set()
            await asyncio.sleep(0.01)

    sup = Supervisor(backoff=0.01, max_backoff=0.05)
    before = REGISTRY.get_sample_value("loop_restarts_total", {"loop": "flaky"}) or 0
    sup.add("flaky", flaky)
    with caplog.at_level(logging.ERROR, logger="shared.supervisor"):
        sup.start()
        await asyncio.wait_for(done.wait(), 5)
    assert len(runs) == 3
    assert sup.status()["flaky"]["restarts"] == 2
    error = str(sup.status()["flaky"]["last_error"])
    assert error.startswith("RuntimeError at test_supervisor.py:"), error
    assert REGISTRY.get_sample_value("loop_restarts_total", {"loop": "flaky"}) == before + 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("loop flaky stopped (RuntimeError at" in m for m in messages), messages
    assert not any("+1555" in m for m in messages)  # the exception's message is not logged
    assert sup.stale() == []
    await sup.stop()


async def test_a_loop_that_returns_is_restarted_too() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    sup = Supervisor(backoff=0.01, max_backoff=0.02)
    sup.add("once", once)
    sup.start()
    await until(lambda: runs >= 3)
    await sup.stop()


async def test_a_loop_without_a_heartbeat_is_stale() -> None:
    clock = Clock()
    stuck = asyncio.Event()

    async def healthy() -> None:
        while True:
            beat()
            await asyncio.sleep(0.01)

    async def hangs() -> None:
        beat()
        await stuck.wait()  # never set: a loop blocked for good

    sup = Supervisor(stale_after=60, clock=clock)
    sup.add("healthy", healthy)
    sup.add("hangs", hangs, stale_after=30)
    sup.start()
    await asyncio.sleep(0.05)
    assert sup.stale() == []
    clock.now = 31
    await asyncio.sleep(0.05)
    assert sup.stale() == ["hangs"]
    clock.now = 61
    await asyncio.sleep(0.05)
    assert sup.stale() == ["hangs"]  # the healthy one beat at 31 and again since
    await sup.stop()
    assert sup.stale() == ["healthy", "hangs"]  # stopped loops are not alive


async def test_a_crash_loop_that_never_beats_turns_stale() -> None:
    clock = Clock()

    async def crashes() -> None:
        raise ValueError("bad")

    sup = Supervisor(stale_after=10, backoff=0.01, max_backoff=0.01, clock=clock)
    sup.add("crashes", crashes)
    sup.start()
    await until(lambda: sup.status()["crashes"]["restarts"] >= 3)
    assert sup.stale() == []
    clock.now = 11
    assert sup.stale() == ["crashes"]
    await sup.stop()


def test_beat_outside_a_supervisor_does_nothing() -> None:
    beat()


def test_names_are_unique() -> None:
    sup = Supervisor()

    async def loop() -> None:
        return None

    sup.add("a", loop)
    with pytest.raises(ValueError, match="already supervised"):
        sup.add("a", loop)
