"""Fault drills against the running local stack: ``python -m tools.chaos`` (``make chaos``).

While a steady stream of reports flows, each drill breaks one thing and repairs it:
kill -9 the assessor, the notifier, ingest (each restarted with ``deploy/stack.sh up``);
restart the Kafka broker; stop PostgreSQL for 30 s; make the sandbox answer 500, then 429,
for 30 s; and scale out: a second assessor worker joins the group, takes its share of the
partitions, and is killed -9 mid-stream, so the first takes its partitions and their state
back. Afterwards it checks that

- every report that got a 2xx is in the assessor's read API;
- every expected reassurance is in the notifier's ledger once and reached the sandbox exactly
  once (a patient text is never sent twice);
- every urgent page (red-flag note) reached the on-call phone at least once;
- no service is left crash-looping (same pid for a while, /readyz 200);
- after the scale-out drill, a second report from each patient earns no second reassurance
  (at most one per 14 days): the state moved with the partitions instead of starting over.

Each report goes to a fresh patient (reassurances are at most one per 14 days), enrolled
before the drills start, severity 2 on day 5 at a daytime hour in the patient's zone; every
fifth carries a red-flag note instead (an urgent page to that patient's own on-call phone).
Usage: ``python -m tools.chaos [--only assessor,notifier,ingest,kafka,postgres,sms500,sms429,
scaleout]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from tools.bench import daytime_zone, enroll_many, patient_body, stack_now
from tools.client import ROOT, Stack
from tools.drills import chosen, verdict

T = TypeVar("T")
RED_FLAG = "my face is drooping and I have a fever"
DRILLS = ("assessor", "notifier", "ingest", "kafka", "postgres", "sms500", "sms429", "scaleout")
SERVICES = ("sandbox", "ingest", "assessor", "notifier")
PORTS = {  # the stack's ports (INGEST_PORT …), as stack.sh starts it
    name: int(os.environ.get(f"{name.upper()}_PORT", default))
    for name, default in (
        ("sandbox", 8090),
        ("ingest", 8080),
        ("assessor", 8081),
        ("notifier", 8082),
    )
}


@dataclass
class Patient:
    pid: str
    phone: str
    on_call: str
    red_flag: bool


@dataclass
class Sent:
    patient: Patient
    event_id: str


@dataclass
class DrillResult:
    name: str
    accepted: list[Sent] = field(default_factory=list)
    refused: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def stack_env() -> dict[str, str]:
    env = dict(os.environ)
    mode = (ROOT / ".run" / "stack.mode").read_text().strip()
    key, _, value = mode.partition("=")
    env[key] = value
    return env


def sh(*cmd: str) -> None:
    subprocess.run(cmd, cwd=ROOT, env=stack_env(), check=True, capture_output=True, timeout=300)


def pid_of(service: str) -> int | None:
    try:
        return int((ROOT / ".run" / "pids" / f"{service}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def kill9(service: str) -> None:
    pid = pid_of(service)
    if pid is not None and alive(pid):
        os.kill(pid, signal.SIGKILL)


async def stream(
    stack: Stack, patients: list[Patient], now: dt.datetime, rate: float, result: DrillResult
) -> None:
    """One report per patient at ``rate``/s; each retried (same event id) for up to 20 s."""

    async def one(p: Patient) -> None:
        event_id = str(uuid.uuid4())
        body: dict[str, Any] = {
            "event_id": event_id,
            "patient_id": p.pid,
            "occurred_at": now.isoformat(),
            "source": "app",
        }
        if p.red_flag:
            body["note"] = RED_FLAG
        else:
            body["severity"] = 2
        deadline = time.monotonic() + 20
        while True:
            try:
                r = await stack.ingest.post("/v1/symptom-reports", json=body, timeout=5)
                if r.status_code == 202:
                    result.accepted.append(Sent(p, event_id))
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                result.refused += 1
                return
            await asyncio.sleep(0.5)

    tasks = []
    for p in patients:
        tasks.append(asyncio.create_task(one(p)))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)


async def wait_ready(
    limit: float = 180,
    ports: dict[str, int] | None = None,
    running: Callable[[], bool] | None = None,
) -> None:
    """Every service (or each of ``ports``) answers /readyz 200 within ``limit`` seconds;
    ``running`` says whether a process we started is still there to wait for."""
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(timeout=2) as c:
        for name, port in (ports or {s: PORTS[s] for s in SERVICES}).items():
            while True:
                try:
                    if (await c.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if running is not None and not running():
                    raise RuntimeError(f"{name} exited; see its log")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready")
                await asyncio.sleep(0.5)


class SecondAssessor:
    """Another worker of the same faust group, on its own port and data directory."""

    def __init__(self) -> None:
        self.port = int(os.environ.get("ASSESSOR2_PORT", PORTS["assessor"] + 2))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = ROOT / ".run" / "logs" / "assessor-2.log"
        self.log_start = self.log.stat().st_size if self.log.exists() else 0

    def batches_applied(self) -> int:
        """How many batches this run of the second worker applied (from its JSON log)."""
        with self.log.open("rb") as f:
            f.seek(self.log_start)
            return sum(b'"msg": "batch applied"' in line for line in f)

    def start(self) -> None:
        env = stack_env()
        env["ASSESSOR_PORT"] = str(self.port)
        env["ASSESSOR_DATA_DIR"] = str(ROOT / ".run" / "assessor-2")
        env.setdefault("API_TOKEN", (ROOT / ".run" / "api-token").read_text().strip())
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "python"), "-m", "assessor"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self, limit: float = 180) -> None:
        """Both workers answer /readyz: each has partitions and has recovered their state."""
        ports = {"assessor-2": self.port, "assessor": PORTS["assessor"]}
        await wait_ready(limit, ports, lambda: self.proc is not None and self.proc.poll() is None)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


async def second_round(stack: Stack, result: DrillResult, now: dt.datetime) -> None:
    """Another report from each patient after the failover: in the state, and no second text."""
    later = now + dt.timedelta(minutes=5)
    again = []
    for s in result.accepted:
        if s.patient.red_flag:
            continue
        event_id = str(uuid.uuid4())
        body = {
            "event_id": event_id,
            "patient_id": s.patient.pid,
            "occurred_at": later.isoformat(),
            "source": "app",
            "severity": 2,
        }
        r = await stack.ingest.post("/v1/symptom-reports", json=body, timeout=10)
        if r.status_code != 202:
            result.failures.append(f"{s.patient.pid}: second report refused ({r.status_code})")
            continue
        again.append(Sent(s.patient, event_id))

    async def in_state(s: Sent) -> bool:
        rec = await stack.recovery(s.patient.pid)
        return rec is not None and s.event_id in {r["event_id"] for r in rec["reports"]}

    for s in await unmet(again, in_state, within=120):
        result.failures.append(f"{s.patient.pid}: second report not in the assessor's state")
    await asyncio.sleep(5)  # a wrongly repeated reassurance would be sent by now
    for s in again:
        if len(await stack.texts_to(s.patient.phone)) != 1:
            result.failures.append(
                f"{s.patient.pid}: {len(await stack.texts_to(s.patient.phone))} texts after"
                " the failover (state lost with the partition?)"
            )


async def up() -> None:
    await asyncio.to_thread(sh, "deploy/stack.sh", "up")


async def fault(stack: Stack, name: str, second: SecondAssessor | None = None) -> None:
    if name == "scaleout":
        assert second is not None
        second.kill9()
    elif name in ("assessor", "notifier", "ingest"):
        kill9(name)
        await asyncio.sleep(1)
        await up()
    elif name == "kafka":
        await asyncio.to_thread(sh, "deploy/kafka.sh", "stop")
        await asyncio.to_thread(sh, "deploy/kafka.sh", "start")
        await asyncio.to_thread(sh, "deploy/kafka.sh", "wait")
        await up()
    elif name == "postgres":
        await asyncio.to_thread(sh, "deploy/postgres.sh", "stop")
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.to_thread(sh, "deploy/postgres.sh", "start")
            await asyncio.to_thread(sh, "deploy/postgres.sh", "wait")
        await up()
    elif name in ("sms500", "sms429"):
        mode = name[3:]
        r = await stack.sandbox.post("/sandbox/faults", json={"mode": mode, "count": None})
        r.raise_for_status()
        try:
            await asyncio.sleep(30)
        finally:
            await stack.sandbox.post("/sandbox/faults", json={"mode": "none", "count": None})


async def unmet(sent: list[T], ok: Callable[[T], Awaitable[bool]], within: float) -> list[T]:
    """Poll ``ok`` for each until all hold or ``within`` s pass; return those that never did."""
    deadline = time.monotonic() + within
    pending = list(sent)
    while pending and time.monotonic() < deadline:
        pending = [s for s in pending if not await ok(s)]
        if pending:
            await asyncio.sleep(2)
    return pending


async def verify(stack: Stack, result: DrillResult, within: float) -> None:
    """Wait (up to ``within`` s) until every expectation holds, then check nothing doubles."""
    for s in await unmet(result.accepted, lambda s: satisfied(stack, s), within):
        result.failures.append(f"{s.patient.pid}: {await describe(stack, s)}")
    await asyncio.sleep(3)  # anything sent twice would show up by now
    for s in result.accepted:
        if not s.patient.red_flag and len(await stack.texts_to(s.patient.phone)) > 1:
            result.failures.append(f"{s.patient.pid}: patient text sent more than once")


async def satisfied(stack: Stack, s: Sent) -> bool:
    rec = await stack.recovery(s.patient.pid)
    if rec is None or s.event_id not in {r["event_id"] for r in rec["reports"]}:
        return False
    if s.patient.red_flag:
        return bool(await stack.texts_to(s.patient.on_call))
    rows = [n for n in await stack.notifications(s.patient.pid) if n["kind"] == "reassurance"]
    texts = await stack.texts_to(s.patient.phone)
    return len(rows) == 1 and rows[0]["status"] in ("sent", "delivered") and len(texts) == 1


async def describe(stack: Stack, s: Sent) -> str:
    rec = await stack.recovery(s.patient.pid)
    in_state = rec is not None and s.event_id in {r["event_id"] for r in rec["reports"]}
    rows = await stack.notifications(s.patient.pid)
    target = s.patient.on_call if s.patient.red_flag else s.patient.phone
    texts = await stack.texts_to(target)
    statuses = [(n["kind"], n["status"]) for n in rows]
    return f"in assessor: {in_state}; ledger: {statuses}; texts to {target[-4:]}: {len(texts)}"


async def no_crash_loop(result: DrillResult) -> None:
    before = {s: pid_of(s) for s in SERVICES}
    await asyncio.sleep(5)
    for s in SERVICES:
        pid = pid_of(s)
        if pid != before[s] or not alive(pid):
            result.failures.append(f"{s} restarted or died after the drill (crash loop?)")
    try:
        await wait_ready(limit=10)
    except TimeoutError as exc:
        result.failures.append(str(exc))


async def drill(
    stack: Stack, name: str, patients: list[Patient], now: dt.datetime, rate: float
) -> DrillResult:
    result = DrillResult(name)
    t0 = time.monotonic()
    second = SecondAssessor() if name == "scaleout" else None
    try:
        if second is not None:
            second.start()
            await second.ready()
        flow = asyncio.create_task(stream(stack, patients, now, rate, result))
        # The second worker is killed halfway through the stream, the others' faults at 3 s.
        await asyncio.sleep(3 if second is None else len(patients) / rate / 2)
        try:
            await fault(stack, name, second)
        finally:
            await up()  # whatever happened, leave the stack running
        await flow
    finally:
        if second is not None:
            second.kill9()
    await wait_ready()
    # After a kill -9 the group waits out the dead member's session before it rebalances.
    await verify(stack, result, within=150)
    if second is not None:
        if not second.batches_applied():
            result.failures.append("the second worker applied nothing: no partition moved")
        await second_round(stack, result, now)
    await no_crash_loop(result)
    result.seconds = time.monotonic() - t0
    return result


async def main(only: list[str], per_drill: int, rate: float) -> bool:
    run = uuid.uuid4().hex[:6]
    async with Stack() as stack:
        await wait_ready()
        now = await stack_now(stack)
        zone = daytime_zone(now)
        plan: dict[str, list[Patient]] = {}
        bodies = []
        for d, name in enumerate(only):
            plan[name] = []
            for i in range(per_drill):
                n = d * 1000 + i
                p = Patient(
                    pid=f"chaos-{run}-{name}-{i}",
                    phone=f"+1556{int(run, 16) % 1000:03d}{n:04d}",
                    on_call=f"+1557{int(run, 16) % 1000:03d}{n:04d}",
                    red_flag=i % 5 == 4,
                )
                plan[name].append(p)
                body = patient_body(p.pid, p.phone, zone, now, consent=True)
                body["care_team"] = {"on_call": p.on_call}
                bodies.append(body)
        await enroll_many(stack, bodies)
        ok = True
        for name in only:
            print(f"drill {name} …", flush=True)
            r = await drill(stack, name, plan[name], now, rate)
            summary = (
                f"{len(r.accepted)} accepted, {r.refused} refused after retries, {r.seconds:.0f} s"
            )
            ok &= verdict(name, r.failures, summary)
        return ok


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(DRILLS))
    parser.add_argument("--per-drill", type=int, default=50, help="reports per drill")
    parser.add_argument("--rate", type=float, default=3.0, help="reports per second")
    args = parser.parse_args()
    only = chosen(args.only, DRILLS)
    raise SystemExit(0 if asyncio.run(main(only, args.per_drill, args.rate)) else 1)


if __name__ == "__main__":
    cli()
