"""Decoded patient states kept beside the state table's JSON bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from assessor.domain import PatientState


class DecodedStates:
    """Recently used patients' states, decoded, beside the table's JSON bytes.

    An entry counts only while the table still holds the very bytes object it was decoded
    from (checked by identity), so a changelog recovery, a rebalance or any other writer can
    never make it serve a stale state; it only saves re-parsing a hot patient's history.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[bytes, PatientState]] = OrderedDict()

    def get(
        self, patient_id: str, raw: bytes, plain: Callable[[bytes], bytes] = bytes
    ) -> PatientState:
        """The state ``raw`` holds (``plain`` turns the stored bytes into its JSON: they
        are sealed with the patient's key)."""
        entry = self._entries.get(patient_id)
        if entry is not None and entry[0] is raw:
            self._entries.move_to_end(patient_id)
            return entry[1]
        state = PatientState.model_validate_json(plain(raw))
        self.put(patient_id, raw, state)
        return state

    def drop(self, patient_id: str) -> None:
        """Forget the patient (erased: no decoded copy of their data stays in memory)."""
        self._entries.pop(patient_id, None)

    def put(self, patient_id: str, raw: bytes, state: PatientState) -> None:
        if self.capacity <= 0:
            return
        self._entries[patient_id] = (raw, state)
        self._entries.move_to_end(patient_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
