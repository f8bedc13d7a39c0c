"""The audit trail: every read or change of patient data appends who (subject, name,
client), what (action, patient, resource), when, from where and the outcome — never a phone
number or a message body.

One implementation for every service. Rows go to the ``audit`` schema through
``audit.append()`` (see ``migrations/001_audit.sql``), which numbers them and chains their
hashes; ``verify`` walks the chain. A request is recorded *before* it acts, and a request
whose audit row cannot be written fails with 503 (``AuditUnavailable``) having done nothing.

Writes are batched: while one batch is being committed the next accumulates, so under load
many requests share one transaction (and one fsync), and each request still waits for its
own row to be durable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import asyncpg

from shared.auth import Action, Forbidden, Principal, may, may_see_team
from shared.timefmt import utc_z

log = logging.getLogger(__name__)

GENESIS = "0" * 64
Outcome = Literal["allowed", "denied"]
#: Default retention (AUDIT_RETENTION_DAYS): six years.
RETENTION_DAYS = 6 * 366
MAX_BATCH = 500


class AuditUnavailable(OSError):
    """The audit row could not be written: the request must not go ahead (503). An
    ``OSError``, so every path that treats the database as unreachable (503 and retry in
    the APIs, wait and retry in the consumers) treats the audit the same way."""


class _AnyTeam:
    """For ``guard``: an action on no particular patient (the audit, the clock)."""


ANY_TEAM = _AnyTeam()


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    actor_sub: str
    actor_name: str | None
    actor_client: str | None
    action: str
    patient_id: str | None
    resource: str | None
    outcome: str
    source: str | None
    service: str

    def canonical(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["at"] = self.at.astimezone(dt.UTC).isoformat()
        return doc

    def digest(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def chain(prev_hash: str, digest: str) -> str:
    return hashlib.sha256((prev_hash + digest).encode()).hexdigest()


def sms_actor(phone_ref: str) -> Principal:
    """The SMS path's identity: the phone, by a stable reference (never the number)."""
    return Principal(
        sub=f"sms:{phone_ref}",
        name=None,
        client="sms",
        roles=frozenset(),
        scopes=frozenset(),
        teams=frozenset(),
    )


class AuditTrail:
    """Appends entries for one service. ``url`` is the writing role's database URL."""

    def __init__(
        self,
        url: str,
        service: str,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.url = url
        self.service = service
        self.clock = clock
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(
        self,
        actor: Principal,
        action: str,
        outcome: Outcome,
        *,
        patient_id: str | None = None,
        resource: str | None = None,
        source: str | None = None,
    ) -> None:
        entry = Entry(
            at=self.clock(),
            actor_sub=actor.sub,
            actor_name=actor.name,
            actor_client=actor.client,
            action=action,
            patient_id=patient_id,
            resource=resource,
            outcome=outcome,
            source=source,
            service=self.service,
        )
        row = {**entry.canonical(), "digest": entry.digest()}
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def guard(
        self,
        actor: Principal,
        action: Action,
        *,
        patient_id: str | None,
        resource: str,
        team: str | _AnyTeam | None,
        source: str | None,
    ) -> None:
        """Decide by role, scope and the patient's ``team`` (``None``: an unknown patient;
        ``ANY_TEAM``: no patient), record the decision, and raise ``Forbidden`` if it is a
        refusal (``AuditUnavailable`` if it cannot be recorded)."""
        allowed = may(actor, action) and (isinstance(team, _AnyTeam) or may_see_team(actor, team))
        await self.record(
            actor,
            action,
            "allowed" if allowed else "denied",
            patient_id=patient_id,
            resource=resource,
            source=source,
        )
        if not allowed:
            raise Forbidden

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                pool = await self._get_pool()
                await asyncio.wait_for(
                    pool.execute(
                        "SELECT audit.append($1::jsonb)", json.dumps([r for r, _ in batch])
                    ),
                    10,
                )
            except Exception as exc:  # whatever it is, no request may wait forever on it
                log.warning("audit rows not written: %s", type(exc).__name__)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(AuditUnavailable())
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _get_pool(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4, timeout=5)
                assert pool is not None
                self._pool = pool
            return self._pool

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


# --- reading, verifying, retention (the owner's connection) ----------------------------


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor stands for; ``ValueError`` if it is not one of ours."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    kind, _, value = raw.partition(":")
    if kind != "seq" or not value.isdigit():
        raise ValueError("not a cursor")
    return int(value)


def _iso(value: dt.datetime) -> str:
    return utc_z(value)


async def query(
    pool: asyncpg.Pool,
    *,
    patient_id: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of entries, oldest first, and the seq to continue after (None: the end)."""
    rows = await pool.fetch(
        "SELECT seq, at, actor_sub, actor_name, actor_client, action, patient_id, resource,"
        " outcome, source FROM audit.events WHERE seq > $1"
        " AND ($2::text IS NULL OR patient_id = $2) AND ($3::text IS NULL OR actor_sub = $3)"
        " AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5)"
        " ORDER BY seq LIMIT $6",
        after_seq,
        patient_id,
        actor,
        since,
        until,
        limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    events = [
        {
            "at": _iso(r["at"]),
            "actor": {"sub": r["actor_sub"], "name": r["actor_name"], "client": r["actor_client"]},
            "action": r["action"],
            "patient_id": r["patient_id"],
            "resource": r["resource"],
            "outcome": r["outcome"],
            "source": r["source"],
        }
        for r in rows
    ]
    return events, (rows[-1]["seq"] if more and rows else None)


@dataclass(frozen=True)
class Verification:
    rows: int
    first_seq: int | None
    last_seq: int | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(conn: asyncpg.Connection | asyncpg.Pool, batch: int = 5000) -> Verification:
    """Walk the chain: every row's digest matches its fields, every row follows the one
    before it (or the last purge's anchor), and seq has no gap."""
    anchor = await conn.fetchrow(
        "SELECT up_to_seq, hash FROM audit.purges ORDER BY up_to_seq DESC LIMIT 1"
    )
    prev_seq = anchor["up_to_seq"] if anchor else 0
    prev_hash = anchor["hash"] if anchor else GENESIS
    problems: list[str] = []
    count = 0
    first: int | None = None
    while True:
        rows = await conn.fetch(
            "SELECT * FROM audit.events WHERE seq > $1 ORDER BY seq LIMIT $2", prev_seq, batch
        )
        if not rows:
            break
        for r in rows:
            count += 1
            first = r["seq"] if first is None else first
            if r["seq"] != prev_seq + 1:
                problems.append(f"rows {prev_seq + 1}..{r['seq'] - 1} are missing")
            entry = Entry(**{k: r[k] for k in Entry.__dataclass_fields__})
            if entry.digest() != r["digest"]:
                problems.append(f"row {r['seq']} was altered (its fields do not match its digest)")
            if r["prev_hash"] != prev_hash:
                problems.append(f"row {r['seq']} does not follow the row before it")
            if chain(r["prev_hash"], r["digest"]) != r["hash"]:
                problems.append(f"row {r['seq']} has a wrong hash")
            prev_seq, prev_hash = r["seq"], r["hash"]
    return Verification(count, first, prev_seq if count else None, problems)


async def purge(conn: asyncpg.Connection | asyncpg.Pool, retention_days: int) -> int:
    """Delete the rows older than the retention; the chain's new start is recorded."""
    n = await conn.fetchval("SELECT audit.purge($1::interval)", dt.timedelta(days=retention_days))
    return int(n or 0)
