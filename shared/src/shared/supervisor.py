"""One supervisor for a service's background loops: a loop that raises (or returns) is
logged with why and restarted with back-off, and each loop's heartbeat says whether it is
still going round, so ``/healthz`` can fail when one is stuck and an orchestrator restarts
the process.

A loop beats by calling :func:`beat` (anywhere inside it, also from helpers it calls): the
supervisor runs each loop in its own context, so ``beat`` knows whose heartbeat it is. Outside
a supervisor (a test calling one round directly) ``beat`` does nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

RESTARTS = Counter("loop_restarts_total", "Background loops restarted after a crash", ["loop"])
HEARTBEAT = Gauge(
    "loop_heartbeat_timestamp_seconds", "When each background loop last went round", ["loop"]
)

Loop = Callable[[], Awaitable[None]]


@dataclass
class _Watched:
    name: str
    run: Loop
    stale_after: float
    clock: Callable[[], float]
    last_beat: float
    restarts: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


_current: contextvars.ContextVar[_Watched | None] = contextvars.ContextVar(
    "supervised_loop", default=None
)


def beat() -> None:
    """The calling loop is alive and making progress."""
    watched = _current.get()
    if watched is not None:
        watched.last_beat = watched.clock()
        HEARTBEAT.labels(watched.name).set(time.time())


class Supervisor:
    """Runs loops forever. ``stale_after``: seconds without a beat before a loop counts as
    stuck; ``backoff``: first restart delay, doubled per consecutive crash up to
    ``max_backoff`` (reset once a loop has run for ``max_backoff`` seconds)."""

    def __init__(
        self,
        *,
        stale_after: float = 120.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stale_after = stale_after
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.loops: dict[str, _Watched] = {}

    def add(self, name: str, run: Loop, *, stale_after: float | None = None) -> None:
        """Supervise ``run`` as ``name`` (started by :meth:`start`, or now if running)."""
        if name in self.loops:
            raise ValueError(f"a loop named {name!r} is already supervised")
        watched = _Watched(name, run, stale_after or self.stale_after, self.clock, self.clock())
        self.loops[name] = watched
        RESTARTS.labels(name)
        HEARTBEAT.labels(name).set(time.time())
        if self._started:
            self._spawn(watched)

    _started = False

    def start(self) -> None:
        self._started = True
        for watched in self.loops.values():
            if watched.task is None:
                self._spawn(watched)

    def _spawn(self, watched: _Watched) -> None:
        context = contextvars.copy_context()
        context.run(_current.set, watched)
        watched.last_beat = self.clock()
        watched.task = asyncio.create_task(
            self._keep_running(watched), name=f"loop:{watched.name}", context=context
        )

    async def _keep_running(self, watched: _Watched) -> None:
        delay = self.backoff
        while True:
            started = self.clock()  # a restart is no heartbeat: a crash loop turns stale
            try:
                await watched.run()
                reason = "returned"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The type and where it was raised, not the message: messages carry data.
                frames = traceback.extract_tb(exc.__traceback__)[-3:]
                where = " < ".join(
                    f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames)
                )
                reason = f"{type(exc).__name__} at {where}"
            watched.restarts += 1
            watched.last_error = reason
            RESTARTS.labels(watched.name).inc()
            if self.clock() - started >= self.max_backoff:
                delay = self.backoff
            log.error("loop %s stopped (%s); restarting in %.1f s", watched.name, reason, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    def stale(self) -> list[str]:
        """Loops that have not beaten within their ``stale_after`` (or whose task ended)."""
        now = self.clock()
        return [
            w.name
            for w in self.loops.values()
            if w.task is None or w.task.done() or now - w.last_beat > w.stale_after
        ]

    def status(self) -> dict[str, dict[str, object]]:
        now = self.clock()
        return {
            w.name: {
                "beat_seconds_ago": round(now - w.last_beat, 1),
                "restarts": w.restarts,
                "last_error": w.last_error,
            }
            for w in self.loops.values()
        }

    async def stop(self) -> None:
        tasks = [w.task for w in self.loops.values() if w.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in self.loops.values():
            w.task = None
        self._started = False
