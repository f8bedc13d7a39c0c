"""What the pages read from the console's schema: a team's open alerts, patients by team,
phase and open alerts (keyset paging), one patient."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    total: int
    next_cursor: str | None


async def business_now(pool: asyncpg.Pool, wall: dt.datetime) -> dt.datetime:
    """The clock the services run on: the latest ``clock.advanced`` if ahead of the wall."""
    now = await pool.fetchval("SELECT now FROM console.clock WHERE id")
    return now if isinstance(now, dt.datetime) and now > wall else wall


_ALERT_COLUMNS = (
    "a.alert_id, a.patient_id, a.team, a.kind, a.rule, a.urgency, a.evidence, a.raised_at,"
    " a.owner_sub, a.owner_name, a.owned_at, a.acknowledged_by, a.acknowledged_at,"
    " a.closed_at, a.closed_by, a.outcome, a.note"
)


def _alert(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["evidence"] = json.loads(row["evidence"]) if isinstance(row["evidence"], str) else []
    return out


async def worklist(pool: asyncpg.Pool, teams: list[str], limit: int, offset: int = 0) -> Page:
    """Open alerts of these teams: urgent first, then oldest first."""
    rows = await pool.fetch(
        f"SELECT {_ALERT_COLUMNS}, p.name, p.phase FROM console.alerts a"  # noqa: S608
        " LEFT JOIN console.patients p ON p.patient_id = a.patient_id"
        " WHERE a.closed_at IS NULL AND a.team = ANY($1::text[])"
        " ORDER BY (a.urgency = 'urgent') DESC, a.raised_at, a.alert_id"
        " LIMIT $2 OFFSET $3",
        teams,
        limit,
        offset,
    )
    total = await pool.fetchval(
        "SELECT count(*) FROM console.alerts WHERE closed_at IS NULL AND team = ANY($1::text[])",
        teams,
    )
    more = offset + len(rows) < total
    return Page([_alert(r) for r in rows], int(total), str(offset + limit) if more else None)


async def patients(
    pool: asyncpg.Pool,
    teams: list[str],
    *,
    query: str = "",
    phase: str = "",
    open_only: bool = False,
    after: str = "",
    limit: int = 50,
) -> Page:
    """Enrolled patients of these teams, by id, ``limit`` after the cursor ``after``."""
    where = ["enrolled_at IS NOT NULL", "team = ANY($1::text[])"]
    args: list[Any] = [teams]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if query:
        like = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(f"(patient_id LIKE {arg(like)} OR lower(name) LIKE lower(${len(args)}))")
    if phase:
        where.append(f"phase = {arg(phase)}")
    if open_only:
        where.append("open_alerts > 0")
    condition = " AND ".join(where)
    count = f"SELECT count(*) FROM console.patients WHERE {condition}"  # noqa: S608
    total = await pool.fetchval(count, *args)
    if after:
        condition += f" AND patient_id > {arg(after)}"
    # Only placeholders are formatted in; every value is an argument.
    sql = (
        "SELECT patient_id, team, name, surgery_date, timezone, baseline_severity, sms_consent,"  # noqa: S608
        " consent_reason, phase, phase_day, open_alerts FROM console.patients"
        f" WHERE {condition} ORDER BY patient_id LIMIT {arg(limit + 1)}"
    )
    rows = await pool.fetch(sql, *args)
    out = [dict(r) for r in rows[:limit]]
    return Page(out, int(total), out[-1]["patient_id"] if len(rows) > limit else None)


async def patient(pool: asyncpg.Pool, patient_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT patient_id, team, name, enrollment, surgery_date, timezone, baseline_severity,"
        " sms_consent, consent_reason, phase, phase_day, open_alerts, enrolled_at"
        " FROM console.patients WHERE patient_id = $1 AND enrolled_at IS NOT NULL",
        patient_id,
    )
    if row is None:
        return None
    out = dict(row)
    out["enrollment"] = json.loads(row["enrollment"]) if row["enrollment"] else {}
    return out


async def team_of(pool: asyncpg.Pool, patient_id: str) -> str | None:
    team = await pool.fetchval(
        "SELECT team FROM console.patients WHERE patient_id = $1 AND enrolled_at IS NOT NULL",
        patient_id,
    )
    return team if isinstance(team, str) else None


async def alerts_of(pool: asyncpg.Pool, patient_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {_ALERT_COLUMNS} FROM console.alerts a WHERE a.patient_id = $1"  # noqa: S608
        " ORDER BY a.raised_at, a.alert_id",
        patient_id,
    )
    return [_alert(r) for r in rows]


async def alert(pool: asyncpg.Pool, alert_id: Any) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        f"SELECT {_ALERT_COLUMNS} FROM console.alerts a WHERE a.alert_id = $1",  # noqa: S608
        alert_id,
    )
    return _alert(row) if row is not None else None


async def texts_of(pool: asyncpg.Pool, patient_id: str) -> list[dict[str, Any]]:
    """What the patient texted (SMS reports, STOP, START), oldest first."""
    rows = await pool.fetch(
        "SELECT event_id, at, kind, severity, note FROM console.reports"
        " WHERE patient_id = $1 AND channel = 'sms' ORDER BY at, event_id",
        patient_id,
    )
    return [dict(r) for r in rows]


async def reports_by_id(pool: asyncpg.Pool, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The reports named as alerts' evidence, by event id."""
    if not ids:
        return {}
    rows = await pool.fetch(
        "SELECT r.event_id, r.at, r.severity, r.note, p.surgery_date, p.timezone"
        " FROM console.reports r LEFT JOIN console.patients p ON p.patient_id = r.patient_id"
        " WHERE r.event_id = ANY($1::uuid[])",
        ids,
    )
    return {str(r["event_id"]): dict(r) for r in rows}
