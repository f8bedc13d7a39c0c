"""Which errors mean "a dependency is unavailable, try again" and which mean "this input
cannot be done": the one list every service retries on (or answers 503 for).

An outage of the broker or the database is transient: waiting and repeating the same work
succeeds once it is back, so a stream holds its place and an HTTP caller is told to retry.
Anything else (a rule bug, a value the database refuses, an event the contract cannot
hold) fails the same way every time: retrying it stalls everything behind it, so it is
refused or dead-lettered instead. Every Kafka error counts as an outage, including an
authorization failure: a misconfigured ACL should hold the stream until it is fixed rather
than dead-letter every event.
"""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaError

UNAVAILABLE: tuple[type[BaseException], ...] = (
    KafkaError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    # a deadlock or serialization failure: the same transaction succeeds when run again
    asyncpg.exceptions.TransactionRollbackError,
    # what asyncpg raises when a connection breaks in the middle of its protocol
    asyncpg.InternalClientError,
    OSError,  # connection refused or reset, and TimeoutError (a subclass)
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, is an outage (faust, for one, wraps
    the broker's errors in its own ``ProducerSendError``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UNAVAILABLE):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False
