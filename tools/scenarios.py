"""Scenarios: readable clinical stories played through the running stack.

``python -m tools.scenarios [FILE ...]`` (``make scenarios``) plays each ``scenarios/*.toml``
in at the HTTP door (enrollments, reports, texted replies, clock moves) and checks what
comes out (the assessor's read API, the notifier's ledger, the SMS sandbox), printing
pass/fail per expectation. The stack must run with ``SIMULATED_CLOCK=1``.

Format (TOML)::

    name = "Relief, then return"
    about = "why this matters"
    tick = "12h"                    # largest clock step when walking between steps (6h, 1d…)

    [patients.ana]                  # one table per patient; ids get a unique run suffix
    timezone = "America/Chicago"
    language = "en"                 # en | es
    baseline_severity = 3
    care_team_timezone = "America/Chicago"   # optional
    sms_consent = true              # optional

    [[step]]
    at = "day 2 09:00"              # patient-local time, days since surgery (surgery = day 0)
    patient = "ana"                 # optional when there is one patient
    report = 0                      # a report through the API: a grade, or a table:
    # report = {severity = 3, note = "...", occurred = "day 1 20:00", id = "r1"}
    # sms = "3"                     # a texted reply from the patient's phone
    # ack = true                    # the on-call phone texts ACK <code> for the open page
    [step.expect]                   # checked after the step (polled until it holds)
    phase = "expected_window"
    alerts = ["worsening"]          # the assessor's alert kinds, exactly (any order)
    alerts_include = ["red_flag"]   # … at least these
    alerts_exclude = ["worsening"]  # … none of these
    sent = {reassurance = 1}        # ledger rows delivered, per kind (kinds not named: any)
    suppressed = {reassurance = 1}  # ledger rows suppressed, per kind
    texts = 1                       # texts the patient's phone received (sandbox)
    pages = 1                       # texts the care team's on-call phone received
    reports = 2                     # reports in the assessor's read model
    erased = true                   # the patient's erasure is done (erasure_reason: why)

A step may carry its own ``tick`` (the largest clock step on the way to it), for stories
that span years.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import secrets
import sys
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from shared.kafka_security import default_bootstrap
from tools.client import Stack, StackError, consumers_caught_up, eventually

ROOT = Path(__file__).resolve().parents[1]
SETTLE = 0.75  # seconds an expectation must keep holding (catches late arrivals)
DELIVERED = {"sent", "delivered", "acknowledged", "escalated"}

_AT = re.compile(r"^day\s+(-?\d+)(?:\s+(\d{1,2}):(\d{2}))?$")
_SPAN = re.compile(r"^(\d+)([mhd])$")


def parse_span(text: str) -> dt.timedelta:
    m = _SPAN.match(text.strip())
    if not m:
        raise ValueError(f"not a span like 6h or 1d: {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return {"m": dt.timedelta(minutes=n), "h": dt.timedelta(hours=n), "d": dt.timedelta(days=n)}[
        unit
    ]


@dataclass
class Patient:
    key: str
    patient_id: str
    phone: str
    on_call: str
    backup: str
    timezone: str
    spec: dict[str, Any]

    def at(self, surgery: dt.date, text: str) -> dt.datetime:
        m = _AT.match(text.strip())
        if not m:
            raise ValueError(f"not a time like 'day 5 09:30': {text!r}")
        day, hh, mm = int(m.group(1)), int(m.group(2) or 12), int(m.group(3) or 0)
        local = dt.datetime.combine(surgery + dt.timedelta(days=day), dt.time(hh, mm))
        return local.replace(tzinfo=ZoneInfo(self.timezone)).astimezone(dt.UTC)


@dataclass
class Result:
    name: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


def _phone() -> str:
    return "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))


class Runner:
    def __init__(self, stack: Stack, tick: dt.timedelta) -> None:
        self.stack = stack
        self.default_tick = tick

    async def ensure_simulated(self) -> dt.datetime:
        now, simulated = await self.stack.clock()
        if not simulated:
            raise SystemExit(
                "scenarios need the simulated clock: `make down && SIMULATED_CLOCK=1 make up`"
            )
        return now or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    async def settle(self) -> None:
        """Wait until the assessor and the notifier have consumed everything published."""
        bootstrap = default_bootstrap()

        async def drained() -> bool:
            return await consumers_caught_up(bootstrap)

        await eventually(drained, within=300, every=0.3)

    async def move_clock(
        self, current: dt.datetime, target: dt.datetime, tick: dt.timedelta
    ) -> dt.datetime:
        while current < target:
            current = min(target, current + tick)
            await self.stack.set_clock(current)
        return current

    async def play(self, path: Path, spec: dict[str, Any]) -> Result:
        result = Result(spec.get("name", path.stem))
        run = secrets.token_hex(3)
        tick = parse_span(spec.get("tick", "")) if spec.get("tick") else self.default_tick
        patients = {
            key: Patient(
                key,
                f"sc-{path.stem[:20]}-{key}-{run}",
                _phone(),
                _phone(),
                _phone(),
                p.get("timezone", "America/Chicago"),
                p,
            )
            for key, p in spec["patients"].items()
        }
        clock = await self.ensure_simulated()
        # Surgery two days after the current clock, so every scenario starts pre-operative.
        surgery = (clock + dt.timedelta(days=2)).date()
        for p in patients.values():
            await self.stack.enroll(
                {
                    "patient_id": p.patient_id,
                    "phone": p.phone,
                    "timezone": p.timezone,
                    "language": p.spec.get("language", "en"),
                    "surgery_date": surgery.isoformat(),
                    "baseline_severity": p.spec.get("baseline_severity", 3),
                    "care_team": {
                        "on_call": p.on_call,
                        "backup": p.backup,
                        "timezone": p.spec.get("care_team_timezone", p.timezone),
                    },
                    "sms_consent": p.spec.get("sms_consent", True),
                }
            )
        ids: dict[str, str] = {}
        await self.settle()  # the enrollments are decided before the clock moves
        for i, step in enumerate(spec.get("step", []), 1):
            p = patients[step.get("patient", next(iter(patients)))]
            when = p.at(surgery, step["at"])
            step_tick = parse_span(step["tick"]) if step.get("tick") else tick
            clock = await self.move_clock(clock, when, step_tick)
            label = f"step {i} ({step['at']})"
            if any(k in step for k in ("report", "sms", "ack")):
                # The clock's moves are decided before the patient acts, as they would be
                # in real time: otherwise a report could overtake ticks still in flight and
                # find several prompts due at once (catch-up sends only the latest).
                await self.settle()
            await self.act(p, surgery, step, ids)
            for name, ok, detail in await self.check(p, patients, step.get("expect", {})):
                result.checks.append((f"{label}: {name}", ok, detail))
        return result

    async def act(
        self, p: Patient, surgery: dt.date, step: dict[str, Any], ids: dict[str, str]
    ) -> None:
        if "report" in step:
            r = step["report"]
            r = {"severity": r} if isinstance(r, int) else dict(r)
            occurred = p.at(surgery, r.pop("occurred", step["at"]))
            body: dict[str, Any] = {
                "patient_id": p.patient_id,
                "occurred_at": occurred.astimezone(ZoneInfo(p.timezone)).isoformat(),
                "source": r.pop("source", "app"),
            }
            if "id" in r:
                name = r.pop("id")
                ids.setdefault(name, str(uuid.uuid5(uuid.NAMESPACE_URL, f"{p.patient_id}:{name}")))
                body["event_id"] = ids[name]
            body.update(r)
            await self.stack.report(body)
        if "sms" in step:
            await self.stack.text_in(p.phone, step["sms"])
        if step.get("ack"):
            pages = await self.stack.texts_to(p.on_call)
            codes = [
                m.group(1) for t in pages if (m := re.search(r"ACK ([A-Z0-9]{4,12})", t["body"]))
            ]
            if not codes:
                raise AssertionError("no page with an ACK code reached the on-call phone")
            await self.stack.text_in(p.on_call, f"ACK {codes[-1]}")

    async def observe(self, p: Patient) -> dict[str, Any]:
        recovery = await self.stack.recovery(p.patient_id) or {}
        notes = await self.stack.notifications(p.patient_id)
        erasure = await self.stack.erasure(p.patient_id) or {}
        sent: dict[str, int] = {}
        suppressed: dict[str, int] = {}
        for n in notes:
            if n["status"] in DELIVERED:
                sent[n["kind"]] = sent.get(n["kind"], 0) + 1
            elif n["status"] == "suppressed":
                suppressed[n["kind"]] = suppressed.get(n["kind"], 0) + 1
        return {
            "erased": erasure.get("status") == "done",
            "erasure_reason": erasure.get("reason"),
            "phase": recovery.get("phase", "none"),
            "alerts": sorted(a["kind"] for a in recovery.get("alerts", [])),
            "reports": len(recovery.get("reports", [])),
            "sent": sent,
            "suppressed": suppressed,
            "texts": len(await self.stack.texts_to(p.phone)),
            "pages": len(await self.stack.texts_to(p.on_call)),
        }

    @staticmethod
    def compare(expect: dict[str, Any], seen: dict[str, Any]) -> list[tuple[str, bool, str]]:
        out = []
        for key, want in expect.items():
            got = seen.get(key)
            if key == "alerts":
                ok = sorted(want) == got
            elif key == "alerts_include":
                got = seen["alerts"]
                ok = all(kind in got for kind in want)
            elif key == "alerts_exclude":
                got = seen["alerts"]
                ok = not any(kind in got for kind in want)
            elif key in ("sent", "suppressed"):
                ok = all((got or {}).get(kind, 0) == n for kind, n in want.items())
                got = {k: (got or {}).get(k, 0) for k in want}
            else:
                ok = got == want
            out.append((f"{key} = {want}", ok, f"got {got}"))
        return out

    async def check(
        self, p: Patient, patients: dict[str, Patient], expect: dict[str, Any]
    ) -> list[tuple[str, bool, str]]:
        if not expect:
            return []
        target = patients[expect.pop("patient")] if "patient" in expect else p

        async def holds() -> list[tuple[str, bool, str]] | None:
            checks = self.compare(expect, await self.observe(target))
            return checks if all(ok for _, ok, _ in checks) else None

        # First let the pipeline drain (a clock jump can make many older patients due at
        # once), then poll: the window is for the last hop, not for a backlog.
        await self.settle()
        if await eventually(holds, within=20):
            await asyncio.sleep(SETTLE)
        return self.compare(expect, await self.observe(target))


async def main_async(specs: list[tuple[Path, dict[str, Any]]], tick: dt.timedelta) -> int:
    async with Stack() as stack:
        runner = Runner(stack, tick)
        failed = 0
        for path, spec in specs:
            try:
                result = await runner.play(path, spec)
            except (StackError, httpx.HTTPError, AssertionError, ValueError) as exc:
                result = Result(spec.get("name", path.stem))
                result.checks.append(("ran to the end", False, f"{type(exc).__name__}: {exc}"))
            print(f"{'PASS' if result.ok else 'FAIL'}  {result.name}  ({path.name})")
            for name, ok, detail in result.checks:
                if not ok:
                    failed += 1
                print(f"   {'ok  ' if ok else 'FAIL'} {name}{'' if ok else '  — ' + detail}")
        print(f"\n{len(specs)} scenarios, {failed} failed expectations")
        return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path)
    # 12 h: a step never passes two daily prompts, even across a DST change (10:00 to 10:00
    # is 23 h then), so catch-up (only the latest of several due prompts is sent) stays out
    # of stories that are not about it.
    parser.add_argument("--tick", default="12h", help="largest clock step (default 12h)")
    args = parser.parse_args()
    paths = args.files or sorted((ROOT / "scenarios").glob("*.toml"))
    specs = [(path, tomllib.loads(path.read_text())) for path in paths]
    sys.exit(asyncio.run(main_async(specs, parse_span(args.tick))))


if __name__ == "__main__":
    main()
