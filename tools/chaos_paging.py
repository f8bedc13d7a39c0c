"""Drills for "never lose a page or an inbound text", against the running local stack:
``python -m tools.chaos_paging`` (part of ``make chaos``).

- ``inbound``: Kafka is stopped while patients text (through the sandbox's signed webhook);
  every text must be answered 200 TwiML, and once Kafka is back every one must be a report in
  the assessor and every red flag must page the patient's on-call phone.
- ``provider``: the SMS provider (the sandbox) answers 500 to every text and call while red
  flags arrive and the simulated clock moves 30 minutes on; when it returns, every page must
  reach its on-call phone, the on-call must also have been called (the voice fallback), and
  no notification may be ``failed``. Needs ``SIMULATED_CLOCK=1`` (``make chaos`` switches
  the running stack to it for these drills with ``deploy/with-stack.sh``, and back).
- ``loops``: an exception injected into each of the notifier's loops (the integration test
  tests/integration/test_notifier_loops.py, on this stack's Kafka and PostgreSQL).

Usage: ``python -m tools.chaos_paging [--only inbound,provider,loops] [--texts N]
[--kafka-down S]``. Prints one line per drill with its figures; exit 1 if one fails.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

from tools.bench import daytime_zone, enroll_many, patient_body, stack_now
from tools.chaos import sh, unmet, up, wait_ready
from tools.client import ROOT, Stack
from tools.drills import chosen, verdict

DRILLS = ("inbound", "provider", "loops")
RED_FLAG = "my face is drooping and I have a fever"
#: Event ids of inbound texts (ingest/inbound.py): the drill finds each text's report by it.
SMS_NAMESPACE = uuid.UUID("4f7c3a52-9a8e-4c59-bf7d-1d0e2a6b9c11")


@dataclass
class Texter:
    pid: str
    phone: str
    on_call: str
    red_flag: bool
    message_sid: str | None = None


@dataclass
class Result:
    name: str
    figures: dict[str, object] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


async def cohort(stack: Stack, name: str, n: int) -> tuple[list[Texter], dt.datetime]:
    run = uuid.uuid4().hex[:6]
    now = await stack_now(stack)
    zone = daytime_zone(now)
    people = [
        Texter(
            pid=f"drill-{name}-{run}-{i}",
            phone=f"+1558{int(run, 16) % 1000:03d}{i:04d}",
            on_call=f"+1559{int(run, 16) % 1000:03d}{i:04d}",
            red_flag=i % 3 == 2,
        )
        for i in range(n)
    ]
    bodies = []
    for p in people:
        body = patient_body(p.pid, p.phone, zone, now, consent=True)
        body["care_team"] = {"on_call": p.on_call}
        bodies.append(body)
    await enroll_many(stack, bodies)
    return people, now


async def text_all(stack: Stack, people: list[Texter], result: Result) -> None:
    for p in people:
        answer = await stack.text_in(p.phone, RED_FLAG if p.red_flag else "2")
        if answer.get("status") != 200 or "<Response" not in str(answer.get("twiml")):
            result.failures.append(f"{p.pid}: ingest answered {answer.get('status')}")
        p.message_sid = str(answer.get("message_sid"))


async def reported(stack: Stack, p: Texter) -> bool:
    event_id = str(uuid.uuid5(SMS_NAMESPACE, f"twilio-inbound:{p.message_sid}"))
    rec = await stack.recovery(p.pid)
    if rec is None or event_id not in {r["event_id"] for r in rec["reports"]}:
        return False
    return not p.red_flag or bool(await stack.texts_to(p.on_call))


async def drill_inbound(stack: Stack, texts: int, down_s: float) -> Result:
    result = Result("inbound")
    people, _ = await cohort(stack, "inbound", texts)
    await asyncio.to_thread(sh, "deploy/kafka.sh", "stop")
    t0 = time.monotonic()
    try:
        answered_at = time.monotonic()
        await text_all(stack, people, result)
        result.figures["answer_s"] = round((time.monotonic() - answered_at) / len(people), 2)
        await asyncio.sleep(max(0.0, down_s - (time.monotonic() - t0)))
    finally:
        result.figures["kafka_down_s"] = round(time.monotonic() - t0)
        await asyncio.to_thread(sh, "deploy/kafka.sh", "start")
        await asyncio.to_thread(sh, "deploy/kafka.sh", "wait")
        await up()
    back = time.monotonic()
    missing = await unmet(people, lambda p: reported(stack, p), within=180)
    result.figures["texts"] = len(people)
    result.figures["red_flags"] = sum(p.red_flag for p in people)
    result.figures["all_in_s"] = round(time.monotonic() - back)
    for p in missing:
        result.failures.append(f"{p.pid}: text not a report (or red flag not paged)")
    return result


async def drill_provider(stack: Stack, texts: int, minutes: int) -> Result:
    result = Result("provider")
    now, simulated = await stack.clock()
    if not simulated or now is None:
        result.failures.append("needs the simulated clock (SIMULATED_CLOCK=1)")
        return result
    people, now = await cohort(stack, "provider", texts)
    flagged = [p for p in people if p.red_flag]
    r = await stack.sandbox.post("/sandbox/faults", json={"mode": "500", "count": None})
    r.raise_for_status()
    t0 = time.monotonic()
    try:
        await text_all(stack, flagged, result)  # red flags arrive while it is down
        await asyncio.sleep(5)  # the pages are recorded and fail their first attempts
        for step in range(1, minutes // 5 + 1):  # 30 minutes of business time, 5 at a time
            await stack.set_clock(now + dt.timedelta(minutes=5 * step))
            await asyncio.sleep(3)
    finally:
        await stack.sandbox.post("/sandbox/faults", json={"mode": "none", "count": None})
    result.figures["provider_down_s"] = round(time.monotonic() - t0)
    result.figures["business_minutes"] = minutes
    back = time.monotonic()

    async def reached(p: Texter) -> bool:
        calls = (await stack.sandbox.get("/sandbox/calls", params={"to": p.on_call})).json()
        return bool(await stack.texts_to(p.on_call)) and any(
            c["status"] != "queued" for c in calls["calls"]
        )

    missing = await unmet(flagged, reached, within=420)
    result.figures["pages"] = len(flagged)
    result.figures["all_reached_s"] = round(time.monotonic() - back)
    for p in missing:
        result.failures.append(f"{p.pid}: on-call not texted and called after the outage")
    for p in flagged:
        statuses = [n["status"] for n in await stack.notifications(p.pid)]
        if "failed" in statuses:
            result.failures.append(f"{p.pid}: a notification is failed: {statuses}")
    return result


def drill_loops() -> Result:
    result = Result("loops")
    t0 = time.monotonic()
    test = "tests/integration/test_notifier_loops.py"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    result.figures["loops"] = 7
    result.figures["seconds"] = round(time.monotonic() - t0)
    if done.returncode != 0:
        result.failures.append(done.stdout[-1500:])
    return result


async def main(only: list[str], texts: int, kafka_down: float, minutes: int) -> bool:
    ok = True
    async with Stack() as stack:
        await wait_ready()
        now, simulated = await stack.clock()
        if simulated and now is None:  # a fresh simulated clock starts at the wall time
            await stack.set_clock(dt.datetime.now(dt.UTC))
        for name in only:
            print(f"drill {name} …", flush=True)
            if name == "inbound":
                r = await drill_inbound(stack, texts, kafka_down)
            elif name == "provider":
                r = await drill_provider(stack, texts, minutes)
            else:
                r = await asyncio.to_thread(drill_loops)
            await wait_ready()
            figures = ", ".join(f"{k} {v}" for k, v in r.figures.items())
            ok &= verdict(name, r.failures, figures)
    return ok


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(DRILLS))
    parser.add_argument("--texts", type=int, default=30, help="texters per drill")
    parser.add_argument("--kafka-down", type=float, default=120.0, help="seconds")
    parser.add_argument("--provider-minutes", type=int, default=30, help="business minutes")
    args = parser.parse_args()
    only = chosen(args.only, DRILLS)
    ok = asyncio.run(main(only, args.texts, args.kafka_down, args.provider_minutes))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    cli()
