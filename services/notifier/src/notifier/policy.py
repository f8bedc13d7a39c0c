"""The notifier's timings (``Policy``), its retry back-off and its business clock (the wall
clock, or the simulated one fed by ``clock.advanced``)."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

import asyncpg

from notifier import ledger

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def backoff(attempt: int, base: float = 2.0, cap: float = 300.0) -> dt.timedelta:
    """Exponential backoff with full jitter for retry ``attempt`` (1-based)."""
    ceiling = min(cap, base * 2 ** min(attempt - 1, 40))  # pages retry without end
    return dt.timedelta(seconds=random.uniform(0, ceiling))  # noqa: S311


@dataclass(frozen=True)
class Policy:
    """Timings; the business ones (acknowledgement, escalation) run on the injected clock,
    the technical ones (lease, retries, verification) on the wall clock."""

    #: How long a claimed row may stay ``sending`` before it is reconciled.
    lease: dt.timedelta = dt.timedelta(seconds=120)
    #: After an ambiguous failure, wait at least this long before looking a patient text
    #: up at the provider (and resending only if it is not there).
    verify_delay: dt.timedelta = dt.timedelta(seconds=30)
    #: Reconciliation may miss a message whose provider timestamp is this much off ours.
    clock_skew: dt.timedelta = dt.timedelta(minutes=5)
    ack_timeout: dt.timedelta = dt.timedelta(minutes=15)
    escalation_interval: dt.timedelta = dt.timedelta(minutes=15)
    escalation_repeats: int = 3
    reconcile_every: dt.timedelta = dt.timedelta(seconds=5)
    retry_base: float = 2.0
    #: Pages are retried for as long as their alert is open, at most this far apart.
    retry_cap: float = 300.0
    batch: int = 20
    #: Wrong ACK codes a phone may text within ``ack_window`` before its ACKs are ignored.
    ack_failures: int = 5
    ack_window: dt.timedelta = dt.timedelta(minutes=15)


class SimulatedClock:
    """The business clock when ``SIMULATED_CLOCK=1``: the latest ``clock.advanced`` consumed,
    kept in ``notifier.clock`` across restarts. Before any, it reads 1970 (nothing is due)."""

    def __init__(self, now: dt.datetime | None = None) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now or EPOCH

    async def load(self, pool: asyncpg.Pool) -> None:
        stored = await ledger.load_clock(pool)
        if stored is not None and (self.now is None or stored > self.now):
            self.now = stored

    async def advance(self, pool: asyncpg.Pool, to: dt.datetime) -> bool:
        before = self.now
        self.now = await ledger.advance_clock(pool, to)
        return before != self.now
