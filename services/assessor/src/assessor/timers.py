"""The timer index: each owned partition's patients ordered by their next due time.

A clock tick for partition ``p`` pops exactly the patients whose time has come, so a tick
with a million patients and a thousand due costs the thousand (plus ``log n`` each). The
index is derived data: it is rebuilt from the state table for a partition the first time
a tick for it arrives after an assignment, and dropped when the partition is revoked.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterable

from aiokafka.partitioner import murmur2


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client) picks."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class TimerIndex:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[dt.datetime, str]]] = {}
        self._due: dict[str, dt.datetime] = {}

    def built(self, partition: int) -> bool:
        return partition in self._heaps

    def build(self, partition: int, entries: Iterable[tuple[str, dt.datetime | None]]) -> None:
        heap: list[tuple[dt.datetime, str]] = []
        for patient_id, due in entries:
            if due is not None:
                self._due[patient_id] = due
                heap.append((due, patient_id))
        heapq.heapify(heap)
        self._heaps[partition] = heap

    def set(self, partition: int, patient_id: str, due: dt.datetime | None) -> None:
        """Record a patient's next due time (None: nothing scheduled)."""
        if due is None:
            self._due.pop(patient_id, None)  # its heap entry becomes stale
            return
        if self._due.get(patient_id) == due:
            return
        self._due[patient_id] = due
        heap = self._heaps.get(partition)
        if heap is not None:  # an unbuilt partition gets everything at build time
            heapq.heappush(heap, (due, patient_id))

    def pop_due(self, partition: int, now: dt.datetime) -> list[str]:
        """Remove and return the patients due at ``now``, earliest first."""
        heap = self._heaps.get(partition)
        out: list[str] = []
        while heap and heap[0][0] <= now:
            due, patient_id = heapq.heappop(heap)
            if self._due.get(patient_id) == due:  # otherwise stale: rescheduled or cleared
                del self._due[patient_id]
                out.append(patient_id)
        return out

    def drop(self, partition: int) -> None:
        heap = self._heaps.pop(partition, None) or []
        for due, patient_id in heap:
            if self._due.get(patient_id) == due:
                del self._due[patient_id]

    def __len__(self) -> int:
        return len(self._due)
