"""Regenerate docs/screenshots/: the console's worklist and a patient page at 1280 and 390
px wide, in Debian's headless Chromium, signed in as the demo clinician through Keycloak.

    python -m tools.screenshots        # against the running stack (`make up`)

It enrolls two synthetic patients of team-a with a month of reports, texts a red flag for
one and reports a worsening for the other, and waits until the console shows both. Not part
of `make test`: the pictures are for the README, and a person should look at them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.async_api import Page, async_playwright

from tools.client import ROOT, Stack

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CONSOLE = f"http://127.0.0.1:{os.environ.get('CONSOLE_PORT', 8083)}"
OUT = ROOT / "docs" / "screenshots"
TZ = "America/Chicago"
#: (post-operative day, severity) of the first patient's reports: a slow, ordinary course.
COURSE = [(1, 3), (2, 3), (3, 2), (7, 2), (14, 2), (21, 1), (28, 2)]


def phone() -> str:
    return "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))


async def enroll(stack: Stack, surgery: dt.date) -> tuple[str, str]:
    patient_id, mobile = "demo-" + secrets.token_hex(3), phone()
    await stack.enroll({
        "patient_id": patient_id, "phone": mobile, "timezone": TZ,
        "language": "en", "surgery_date": surgery.isoformat(), "baseline_severity": 3,
        "care_team": {"on_call": phone(), "backup": phone(), "timezone": TZ, "team": "team-a"},
        "sms_consent": True,
    })  # fmt: skip
    return patient_id, mobile


async def sign_in(page: Page) -> None:
    users = json.loads((ROOT / ".run" / "demo-users.json").read_text())
    user = next(u for u in users if u["teams"] == ["team-a"] and "clinician" in u["roles"])
    await page.goto(CONSOLE + "/")
    await page.locator("#username").fill(user["username"])
    await page.locator("#password").fill(user["password"])
    await page.locator("#kc-login").click()
    await page.wait_for_url(CONSOLE + "/")


async def main() -> None:
    async with Stack() as stack:
        now, _ = await stack.clock()
        now = now or dt.datetime.now(dt.UTC)
        today = now.astimezone(ZoneInfo(TZ)).date()
        first, mobile = await enroll(stack, today - dt.timedelta(days=30))
        surgery = today - dt.timedelta(days=30)
        for day, severity in COURSE:
            at = dt.datetime.combine(surgery + dt.timedelta(days=day), dt.time(18),
                                     ZoneInfo(TZ))  # fmt: skip
            await stack.report({"patient_id": first, "occurred_at": at.isoformat(),
                                "severity": severity, "source": "app"})  # fmt: skip
        await stack.text_in(mobile, "2 and my face is drooping on the left since this morning")
        second, _ = await enroll(stack, today - dt.timedelta(days=10))
        await stack.report({
            "patient_id": second, "occurred_at": (now - dt.timedelta(hours=2)).isoformat(),
            "severity": 4, "note": "twitching much worse than before surgery", "source": "app",
        })  # fmt: skip

    OUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        for width, height in ((1280, 900), (390, 844)):
            context = await browser.new_context(viewport={"width": width, "height": height})
            page = await context.new_page()
            await sign_in(page)
            for pid in (first, second):
                row = page.locator(f'tr.alert:has(a[href="/patients/{pid}"])')
                await row.wait_for(timeout=60_000)
            await page.screenshot(path=str(OUT / f"worklist-{width}.png"), full_page=True)
            await page.goto(f"{CONSOLE}/patients/{first}")
            await page.screenshot(path=str(OUT / f"patient-{width}.png"), full_page=True)
            await context.close()
        await browser.close()
    for f in sorted(OUT.glob("*.png")):
        print(Path(f).relative_to(ROOT))


if __name__ == "__main__":
    asyncio.run(main())
