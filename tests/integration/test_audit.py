"""The audit trail on the real PostgreSQL: append-only through audit.append(), the writer
role may do nothing else, and the hash chain tells an edit or a deletion from retention."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.audit import AuditTrail, AuditUnavailable, purge, query, sms_actor, verify
from shared.auth import DEVELOPMENT_PRINCIPAL, Forbidden, Principal
from shared.db import migrate

CLINICIAN_A = Principal(
    sub="u-ana",
    name="Ana Alvarez",
    client="hfs-cli",
    roles=frozenset({"clinician"}),
    scopes=frozenset(),
    teams=frozenset({"team-a"}),
)


def as_writer(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"hfs_audit_writer:hfs_audit_writer@{host}").geturl()


@pytest.fixture
async def audit_pool(pool: asyncpg.Pool) -> asyncpg.Pool:
    assert await migrate(pool, "audit", "shared.audit") == ["001_audit"]
    return pool


@pytest.fixture
async def trail(audit_pool: asyncpg.Pool, scratch_db_url: str) -> AsyncIterator[AuditTrail]:
    t = AuditTrail(as_writer(scratch_db_url), "test")
    yield t
    await t.close()


async def fill(trail: AuditTrail, n: int) -> None:
    for i in range(n):
        await trail.record(
            CLINICIAN_A,
            "patient.read",
            "allowed",
            patient_id=f"p-{i}",
            resource="recovery",
            source="127.0.0.1",
        )


async def test_rows_chain_and_verify(trail: AuditTrail, audit_pool: asyncpg.Pool) -> None:
    await fill(trail, 5)
    await trail.record(
        sms_actor("abc123"),
        "report.write",
        "allowed",
        patient_id="p-1",
        resource="sms/SM1",
        source="sms",
    )
    result = await verify(audit_pool)
    assert result.ok, result.problems
    assert (result.rows, result.first_seq, result.last_seq) == (6, 1, 6)
    events, more = await query(audit_pool, patient_id="p-1")
    assert [e["actor"]["sub"] for e in events] == ["u-ana", "sms:abc123"]
    assert more is None


async def test_the_guard_records_refusals_too(trail: AuditTrail, audit_pool: asyncpg.Pool) -> None:
    await trail.guard(
        CLINICIAN_A,
        "patient.read",
        patient_id="p-a",
        resource="recovery",
        team="team-a",
        source=None,
    )
    with pytest.raises(Forbidden):
        await trail.guard(
            CLINICIAN_A,
            "patient.read",
            patient_id="p-b",
            resource="recovery",
            team="team-b",
            source=None,
        )
    with pytest.raises(Forbidden):
        await trail.guard(
            CLINICIAN_A,
            "patient.read",
            patient_id="p-x",
            resource="recovery",
            team=None,
            source=None,
        )  # unknown patient: refused, and recorded
    events, _ = await query(audit_pool)
    assert [(e["patient_id"], e["outcome"]) for e in events] == [
        ("p-a", "allowed"),
        ("p-b", "denied"),
        ("p-x", "denied"),
    ]


async def test_the_writer_may_only_append(trail: AuditTrail, scratch_db_url: str) -> None:
    await fill(trail, 1)
    writer = await asyncpg.connect(as_writer(scratch_db_url))
    try:
        for sql in (
            "SELECT * FROM audit.events",
            "UPDATE audit.events SET outcome = 'denied'",
            "DELETE FROM audit.events",
            "INSERT INTO audit.events (seq, at, actor_sub, action, outcome, service, digest,"
            " prev_hash, hash) VALUES (99, now(), 'x', 'x', 'x', 'x', 'x', 'x', 'x')",
            "SELECT audit.purge('1 second')",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await writer.execute(sql)
    finally:
        await writer.close()


async def test_an_edit_or_a_deletion_breaks_the_chain(
    trail: AuditTrail, audit_pool: asyncpg.Pool
) -> None:
    await fill(trail, 6)
    await audit_pool.execute("UPDATE audit.events SET outcome = 'denied' WHERE seq = 2")
    await audit_pool.execute("DELETE FROM audit.events WHERE seq = 4")
    problems = (await verify(audit_pool)).problems
    assert any("row 2 was altered" in p for p in problems), problems
    assert any("rows 4..4 are missing" in p for p in problems), problems
    assert any("row 5 does not follow" in p for p in problems), problems


async def test_retention_keeps_the_chain_verifiable(
    trail: AuditTrail, audit_pool: asyncpg.Pool
) -> None:
    await fill(trail, 4)
    await audit_pool.execute("UPDATE audit.events SET at = at - interval '7 years' WHERE seq <= 2")
    # The edit above breaks rows 1-2 (their digests); retention then removes exactly them.
    assert await purge(audit_pool, 6 * 366) == 2
    result = await verify(audit_pool)
    assert result.ok, result.problems
    assert result.first_seq == 3
    await fill(trail, 1)
    assert (await verify(audit_pool)).ok
    # A deletion at the head that retention did not record is caught.
    await audit_pool.execute("DELETE FROM audit.events WHERE seq = 3")
    assert not (await verify(audit_pool)).ok


async def test_cursor_pages_through_in_order(trail: AuditTrail, audit_pool: asyncpg.Pool) -> None:
    await fill(trail, 5)
    seen: list[str | None] = []
    after = 0
    while True:
        events, last = await query(audit_pool, after_seq=after, limit=2)
        seen += [e["patient_id"] for e in events]
        if last is None:
            break
        after = last
    assert seen == [f"p-{i}" for i in range(5)]
    since = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert (await query(audit_pool, since=since))[0] == []


async def test_an_unwritable_audit_fails_the_request() -> None:
    broken = AuditTrail("postgresql://nobody:x@127.0.0.1:1/none", "test")
    with pytest.raises(AuditUnavailable):
        await broken.record(DEVELOPMENT_PRINCIPAL, "patient.read", "allowed", patient_id="p")
    await broken.close()
