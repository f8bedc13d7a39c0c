import datetime as dt

from aiokafka.partitioner import DefaultPartitioner

from assessor.timers import TimerIndex, partition_of

T0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_pops_only_what_is_due_in_order() -> None:
    idx = TimerIndex()
    idx.build(0, [("a", at(5)), ("b", at(1)), ("c", None), ("d", at(10))])
    assert idx.pop_due(0, at(0)) == []
    assert idx.pop_due(0, at(5)) == ["b", "a"]
    assert idx.pop_due(0, at(5)) == []
    assert len(idx) == 1


def test_rescheduling_leaves_no_stale_firing() -> None:
    idx = TimerIndex()
    idx.build(2, [])
    idx.set(2, "p", at(1))
    idx.set(2, "p", at(30))  # moved later
    assert idx.pop_due(2, at(10)) == []
    assert idx.pop_due(2, at(30)) == ["p"]
    idx.set(2, "q", at(1))
    idx.set(2, "q", None)  # cleared
    assert idx.pop_due(2, at(100)) == []


def test_partitions_are_independent_and_droppable() -> None:
    idx = TimerIndex()
    idx.build(0, [("a", at(1))])
    idx.build(1, [("b", at(1))])
    assert idx.pop_due(1, at(2)) == ["b"]
    idx.drop(0)
    assert not idx.built(0)
    assert idx.pop_due(0, at(2)) == []
    assert len(idx) == 0


def test_unbuilt_partition_defers_to_build() -> None:
    idx = TimerIndex()
    idx.set(3, "a", at(1))
    assert idx.pop_due(3, at(5)) == []  # not built yet: a build from the table will include it
    idx.build(3, [("a", at(1))])
    assert idx.pop_due(3, at(5)) == ["a"]


def test_partition_matches_the_producers_partitioner() -> None:
    partitioner = DefaultPartitioner()
    partitions = list(range(6))
    for i in range(200):
        key = f"p-{i:04d}".encode()
        assert partition_of(key, 6) == partitioner(key, partitions, partitions)
