"""Applying a batch so that no error stalls a partition.

The assessor applies a batch of inputs in one go (``apply``: decide in memory, write the
read model, send the decisions, then change the state table). Two kinds of failure need
opposite answers:

* an outage of the broker or the database (``shared.transient``) clears up by itself: the
  batch is retried, with backoff, until it goes through, and the stream waits meanwhile
  (nothing is acknowledged, nothing is lost). Retrying is safe because nothing changes the
  state before the last step, and what went out before a failure is repeated identically.
* anything else (a rule bug, a value the read model refuses, a decision the contract cannot
  hold) fails the same way every time. Retrying it would hold every patient behind it, so
  the batch is applied again one input at a time: the inputs that fail again on their own
  are rejected (the caller dead-letters them with a reason that quotes no input), the others
  go through in their original order.

A rejected input may have had effects before its failure (a read-model row written, a
decision sent) that the inputs after it then repeat or overwrite: the read model is a
projection rewritten whole, and decisions carry deterministic ids and dedupe keys, so the
notifier records each once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Counter

from shared.errors import describe
from shared.transient import is_transient

log = logging.getLogger(__name__)

APPLY_RETRIES = Counter(
    "assessor_apply_retries_total",
    "Batches retried after a database or broker error (the stream waits meanwhile)",
)
ISOLATED = Counter(
    "assessor_batches_isolated_total",
    "Batches applied one input at a time after an error that was not an outage",
)

W = TypeVar("W")
#: ``apply(work, rejected) -> commands sent``; it puts inputs it leaves out in ``rejected``.
Apply = Callable[[list[W], dict[int, Exception]], Awaitable[int]]
Sleep = Callable[[float], Awaitable[None]]

_FIRST_DELAY = 0.1
_MAX_DELAY = 5.0


async def apply_until_done(
    apply: Apply[W],
    work: list[W],
    rejected: dict[int, Exception],
    *,
    sleep: Sleep = asyncio.sleep,
) -> int:
    """``apply`` the batch, retrying outages until it succeeds; on any other error, apply it
    one input at a time and reject (in ``rejected``, by index) the inputs that fail alone."""
    try:
        return await _retrying(apply, work, rejected, sleep)
    except Exception as exc:
        if len(work) == 1:
            rejected.clear()
            rejected[0] = exc
            return 0
        ISOLATED.inc()
        log.warning(
            "batch of %d not applied (%s); applying its inputs one at a time",
            len(work),
            describe(exc),
        )
    rejected.clear()
    sent = 0
    for i, item in enumerate(work):
        alone: dict[int, Exception] = {}
        try:
            sent += await _retrying(apply, [item], alone, sleep)
        except Exception as exc:
            rejected[i] = exc
            continue
        if 0 in alone:
            rejected[i] = alone[0]
    return sent


async def _retrying(
    apply: Apply[W], work: list[W], rejected: dict[int, Exception], sleep: Sleep
) -> int:
    """``apply``, retried while it fails with an outage; any other error is raised."""
    delay = _FIRST_DELAY
    while True:
        try:
            return await apply(work, rejected)
        except Exception as exc:
            if not is_transient(exc):
                raise
            APPLY_RETRIES.inc()
            log.warning("batch not applied (%s); retrying in %.1fs", type(exc).__name__, delay)
            await sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)


async def run_until_done(
    step: Callable[[], Awaitable[object]], *, sleep: Sleep = asyncio.sleep
) -> Exception | None:
    """One step (an erasure) retried while it fails with an outage. Any other error is
    returned, not retried: the caller dead-letters the input it came from rather than hold
    the partition behind a step that would fail the same way every time."""
    delay = _FIRST_DELAY
    while True:
        try:
            await step()
            return None
        except Exception as exc:
            if not is_transient(exc):
                return exc
            APPLY_RETRIES.inc()
            log.warning("step not applied (%s); retrying in %.1fs", type(exc).__name__, delay)
            await sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
