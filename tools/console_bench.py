"""The console's read side at scale: ``python -m tools.console_bench`` (``make bench``).

Seeds a scratch database's ``console`` schema with 100,000 patients in 20 teams (team
``team-a``: 5,000 patients, 1,000 open alerts; 19,000 more alerts open or closed in the
other teams, a report as each alert's evidence), then times the pages a clinician of
``team-a`` loads, in-process through the real app (PostgreSQL, and the running stack's
notifier for the page-status column), ``--runs`` times each. Writes ``.run/console-bench.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from fastapi import Request

from console.app import create_app
from console.principal import Principal
from console.settings import ConsoleSettings
from shared.db import create_pool, migrate
from tools.client import ROOT, api_token

DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://recovery:recovery@127.0.0.1:55432/recovery"
)
NOTIFIER = f"http://127.0.0.1:{os.environ.get('NOTIFIER_PORT', 8082)}"
OUT = ROOT / ".run" / "console-bench.json"
TARGET_MS = 300.0
PHASES = "'{early_postop,expected_window,persistent,late_follow_up,remission}'::text[]"


async def seed(pool: asyncpg.Pool, patients: int, open_alerts: int) -> None:
    teams = 20
    await pool.execute(
        f"""
        INSERT INTO console.patients (patient_id, team, name, enrollment, surgery_date,
            timezone, baseline_severity, sms_consent, consent_reason, phase, phase_day,
            open_alerts, enrolled_at, updated_at)
        SELECT 'p-' || lpad(i::text, 6, '0'),
            CASE WHEN i % {teams} = 0 THEN 'team-a' ELSE 'team-' || (i % {teams}) END,
            NULL, '{{}}'::jsonb, DATE '2026-06-01' - (i % 300), 'America/Chicago', 3, true,
            'enrollment', ({PHASES})[1 + i % 5], i % 300, 0, now(), now()
        FROM generate_series(1, $1) i
        """,  # noqa: S608 - constants only
        patients,
    )
    # Alerts: the first `open_alerts` of team-a open, and 19 times as many elsewhere, half of
    # those closed; each with one report as evidence.
    await pool.execute(
        """
        WITH a AS (
            SELECT g, p.patient_id, p.team, p.surgery_date,
                (p.team = 'team-a' AND g <= $1) OR (p.team <> 'team-a' AND g % 2 = 0) AS open
            FROM generate_series(1, $1 * 20) g
            JOIN console.patients p ON p.patient_id = 'p-' || lpad(
                (CASE WHEN g <= $1 THEN (g * 20) % $2 ELSE (g * 7) % $2 + 1 END)::text, 6, '0')
        ), r AS (
            INSERT INTO console.reports (event_id, patient_id, at, kind, channel, severity, note)
            SELECT md5('r' || g)::uuid, patient_id, now() - (g || ' minutes')::interval,
                'report', 'sms', 4, NULL FROM a
        )
        INSERT INTO console.alerts (alert_id, patient_id, team, kind, rule, urgency, evidence,
            raised_at, closed_at, outcome)
        SELECT md5('a' || g)::uuid, patient_id, team,
            CASE WHEN g % 3 = 0 THEN 'red_flag' ELSE 'worsening' END,
            'bench', CASE WHEN g % 3 = 0 THEN 'urgent' ELSE 'routine' END,
            jsonb_build_array(md5('r' || g)::uuid::text), now() - (g || ' minutes')::interval,
            CASE WHEN open THEN NULL ELSE now() END,
            CASE WHEN open THEN NULL ELSE 'no_action_needed' END
        FROM a
        """,
        open_alerts,
        patients,
    )
    await pool.execute(
        "UPDATE console.patients p SET open_alerts = n FROM (SELECT patient_id, count(*) n"
        " FROM console.alerts WHERE closed_at IS NULL GROUP BY 1) o"
        " WHERE o.patient_id = p.patient_id"
    )
    await pool.execute("ANALYZE console.patients; ANALYZE console.alerts; ANALYZE console.reports")


async def timed(client: httpx.AsyncClient, path: str, runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = await client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
        "max_ms": round(times[-1], 1),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    name = "console_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(DATABASE_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = DATABASE_URL.rpartition("/")
    url = f"{base}/{name}"
    try:
        pool = await create_pool(url)
        await migrate(pool, "console", "console")
        t0 = time.perf_counter()
        await seed(pool, args.patients, args.open_alerts)
        seeded_s = time.perf_counter() - t0
        counts = await pool.fetchrow(
            "SELECT (SELECT count(*) FROM console.patients) AS patients,"
            " (SELECT count(*) FROM console.alerts) AS alerts,"
            " (SELECT count(*) FROM console.alerts WHERE team = 'team-a' AND closed_at IS NULL)"
            " AS team_open"
        )
        await pool.close()
        settings = ConsoleSettings(
            DATABASE_URL=url, CONSOLE_NOTIFIER_URL=NOTIFIER,
            CONSOLE_ASSETS_DIR=str(ROOT / ".run" / "assets"),
            # The audit rows the pages write go to the stack's trail, as in production.
            AUDIT_DATABASE_URL=urlsplit(DATABASE_URL)._replace(
                netloc="hfs_audit_writer:hfs_audit_writer@"
                + urlsplit(DATABASE_URL).netloc.rpartition("@")[2]
            ).geturl(),
        )  # type: ignore[call-arg]  # fmt: skip
        principal = Principal(sub="bench", name="Bench", roles=frozenset({"clinician"}),
                              teams=("team-a",), token=api_token(), session_id="bench")  # fmt: skip

        async def authenticate(_: Request) -> Principal:
            return principal

        app = create_app(settings, authenticate, project=False)
        results: dict[str, Any] = {}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://c") as c:
                await timed(c, "/", 2)  # warm the pool and caches
                middle = f"p-{args.patients // 2:06d}"
                pages = {
                    "worklist (first 50 of the team's open alerts)": "/",
                    "worklist rows (the 5 s poll)": "/worklist/rows",
                    "worklist, page 10": "/?offset=450",
                    "patients, first page": "/patients",
                    "patients, a page deep in the list": f"/patients?after={middle}",
                    "patients, search by id prefix": "/patients?q=p-0420",
                    "patients, phase filter": "/patients?phase=persistent",
                    "patients, with open alerts": "/patients?open=1",
                }
                for label, path in pages.items():
                    results[label] = await timed(c, path, args.runs)
        return {"seed_seconds": round(seeded_s, 1), "counts": dict(counts), "pages": results,
                "target_ms": TARGET_MS}  # fmt: skip
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--open-alerts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    out = asyncio.run(main(args))
    OUT.write_text(json.dumps(out, indent=2))
    print(f"console read side: {out['counts']} (seeded in {out['seed_seconds']} s)")
    print(f"{'page':52} {'median':>8} {'p95':>8} {'max':>8}  target")
    for label, t in out["pages"].items():
        ok = "ok" if t["p95_ms"] <= TARGET_MS else "OVER"
        print(f"{label:52} {t['median_ms']:8.1f} {t['p95_ms']:8.1f} {t['max_ms']:8.1f}"
              f"  ≤ {TARGET_MS:.0f} ms {ok}")  # fmt: skip


if __name__ == "__main__":
    run()
