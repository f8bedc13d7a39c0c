"""The care-team console in headless Chromium (Debian's, deploy/chromium.sh), signed in
through Keycloak's real login page: a red flag texted through the SMS sandbox appears on
the worklist without a reload, the chart's points are the reports sent, acknowledging stops
the escalation (the simulated clock is moved past it), closing takes the alert off the
worklist and keeps its record; another team's clinician gets 403; every page passes
axe-core (the pinned npm file, deploy/npm-assets.sh) with no serious or critical violation;
refresh, failed refresh and logout behave (the old cookie no longer works, and the IdP asks
for the password again)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.e2e.conftest import ROOT, Stack, daytime_zone, random_patient_id, random_phone, stack_now
from tools.client import eventually

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CONSOLE = f"http://127.0.0.1:{os.environ.get('CONSOLE_PORT', 8083)}"
ISSUER = os.environ.get(
    "OIDC_ISSUER", f"http://127.0.0.1:{os.environ.get('KEYCLOAK_PORT', 8180)}/realms/hfs"
)
DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://recovery:recovery@127.0.0.1:55432/recovery"
)
AXE = ROOT / ".run" / "assets" / "axe-core-4.11.0" / "axe.min.js"
COOKIE = "__Host-hfs-console"
RED_FLAG = "my face is drooping on the left"


def demo_user(team: str) -> dict[str, Any]:
    users = json.loads((ROOT / ".run" / "demo-users.json").read_text())
    return next(
        u for u in users if u["roles"] == ["clinician"] and u["teams"] == [team]
    )  # fmt: skip


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run deploy/chromium.sh")
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run deploy/npm-assets.sh")
    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        yield b
        await b.close()


@pytest.fixture
async def db() -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(DATABASE_URL)
    yield conn
    await conn.close()


async def sign_in(page: Page, user: dict[str, Any], path: str = "/") -> None:
    """Through Keycloak's own login page, as a person would."""
    await page.goto(CONSOLE + path)
    assert page.url.startswith(ISSUER + "/protocol/openid-connect/auth?"), page.url
    assert "code_challenge_method=S256" in page.url
    await page.locator("#username").fill(user["username"])
    await page.locator("#password").fill(user["password"])
    await page.locator("#kc-login").click()
    await page.wait_for_url(CONSOLE + path)


async def axe_check(page: Page, what: str) -> None:
    """axe-core on the page as it is: no serious or critical violation. Injected by the
    DevTools protocol, so the console's CSP (scripts from itself only) stays in force."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    assert result == [], f"{what}: {result}"


async def enroll(stack: Stack, team: str, days: int) -> dict[str, Any]:
    now = await stack_now(stack)
    tz = daytime_zone(now)
    patient = {
        "patient_id": random_patient_id(), "phone": random_phone(), "timezone": tz,
        "language": "en", "baseline_severity": 3,
        "surgery_date": (now.astimezone(ZoneInfo(tz)).date() - dt.timedelta(days=days))
        .isoformat(),
        "care_team": {"on_call": random_phone(), "backup": random_phone(), "timezone": tz,
                      "team": team},
        "sms_consent": True,
    }  # fmt: skip
    r = await stack.ingest.post("/v1/patients", json=patient)
    assert r.status_code == 202, r.text
    return patient | {"now": now}


async def texts_to(stack: Stack, phone: str) -> set[str]:
    messages = (await stack.sandbox.get("/sandbox/messages")).json()["messages"]
    return {m["sid"] for m in messages if m["to"] == phone}


async def calls_to(stack: Stack, phone: str) -> set[str]:
    calls = (await stack.sandbox.get("/sandbox/calls", params={"to": phone})).json()["calls"]
    return {c["sid"] for c in calls if c["status"] != "queued"}


async def reached(stack: Stack, *phones: str) -> set[str]:
    """Every text and call the sandbox sent these phones (by sid)."""
    out: set[str] = set()
    for phone in phones:
        out |= await texts_to(stack, phone) | await calls_to(stack, phone)
    return out


async def page_rows(stack: Stack, patient_id: str) -> list[dict[str, Any]]:
    r = await stack.notifier.get(f"/v1/patients/{patient_id}/notifications")
    return [n for n in r.json()["notifications"] if n["audience"] == "care_team"]


async def move_clock(stack: Stack, by: dt.timedelta) -> None:
    clock = (await stack.ingest.get("/v1/clock")).json()
    assert clock["simulated"], "this test moves the clock: run it with SIMULATED_CLOCK=1"
    now = dt.datetime.fromisoformat(clock["now"]) + by
    moved = await stack.ingest.post("/v1/clock", json={"now": now.isoformat()})
    assert moved.status_code == 202, moved.text


async def test_a_clinician_signs_in_and_works_a_red_flag_from_arrival_to_closure(
    stack: Stack, browser: Browser, db: asyncpg.Connection
) -> None:
    ana = demo_user("team-a")
    patient = await enroll(stack, "team-a", days=12)
    pid, phone = patient["patient_id"], patient["phone"]
    on_call, backup = patient["care_team"]["on_call"], patient["care_team"]["backup"]
    graded = str(uuid.uuid4())
    r = await stack.ingest.post("/v1/symptom-reports", json={
        "event_id": graded, "patient_id": pid, "source": "app", "severity": 2,
        "occurred_at": (patient["now"] - dt.timedelta(hours=1)).isoformat(),
    })  # fmt: skip
    assert r.status_code == 202, r.text
    # A second patient whose page nobody acknowledges: proof that moving the clock does
    # escalate, so the first page's silence means something.
    control = await enroll(stack, "team-a", days=12)

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, ana)
    (cookie,) = [c for c in await context.cookies(CONSOLE) if c["name"] == COOKIE]
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == "Lax"
    await expect(page.locator("h1")).to_have_text("Worklist")
    await expect(page.locator(".who")).to_contain_text("team-a")

    # The red flag arrives by SMS while the worklist is open: it appears without a reload.
    await page.evaluate("window.__noReload = true")
    for who in (phone, control["phone"]):
        texted = await stack.sandbox.post("/sandbox/inbound", json={"from": who, "body": RED_FLAG})
        assert texted.status_code == 200, texted.text
    row = page.locator(f'tr.alert:has(a[href="/patients/{pid}"])')
    await expect(row).to_be_visible(timeout=45_000)
    await expect(row).to_contain_text(RED_FLAG, timeout=15_000)
    await expect(row.locator(".badge.urgent")).to_have_text("Urgent")
    assert await page.evaluate("window.__noReload === true"), "the page was reloaded"
    await axe_check(page, "worklist")

    # The page reaches the on-call phone before anyone acknowledges it.
    async def paged(patient_id: str) -> bool:
        return any(n["status"] in ("sent", "delivered") for n in await page_rows(stack,
                   patient_id))  # fmt: skip

    assert await eventually(lambda: paged(pid), within=30), await page_rows(stack, pid)
    assert await eventually(lambda: paged(control["patient_id"]), within=30)

    # The patient page: the chart's points are the reports sent (the SVG's data).
    await row.locator(f'a[href="/patients/{pid}"]').click()
    await page.wait_for_url(f"{CONSOLE}/patients/{pid}")
    points = await page.eval_on_selector_all(
        "svg.trajectory g.point",
        "els => els.map(g => ({day: g.dataset.day, severity: g.dataset.severity,"
        " event: g.dataset.eventId, alerting: g.classList.contains('alerting')}))",
    )
    assert len(points) == 2, points
    assert points[0] == {"day": "12", "severity": "2", "event": graded, "alerting": False}
    assert points[1]["day"] == "12"
    assert points[1]["severity"] == ""  # words only
    assert points[1]["alerting"] is True
    await expect(page.locator("#day")).to_have_text("12")
    await expect(page.locator("svg.trajectory title#chart-title")).to_have_count(1)
    await axe_check(page, "patient page")

    # Acknowledge on the patient page: the notifier's page is acknowledged …
    alert = page.locator("table.alerts tr.alert").first
    await alert.get_by_role("button", name="Acknowledge").click()
    await page.wait_for_url(f"{CONSOLE}/patients/{pid}")
    await expect(page.locator("table.alerts tr.alert .page-status").first).to_contain_text(
        "acknowledged"
    )
    rows = await page_rows(stack, pid)
    assert [n["status"] for n in rows if ":esc" not in n["dedupe_key"]] == ["acknowledged"]

    # … and stays so: past the 15-minute escalation and two repeats, the unacknowledged
    # control page escalates; this one calls and texts nobody further.
    before = await reached(stack, on_call, backup)
    for _ in range(3):
        await move_clock(stack, dt.timedelta(minutes=16))
        await asyncio.sleep(1)

    async def control_escalated() -> bool:
        ctl = control["care_team"]
        return bool(await calls_to(stack, ctl["on_call"]) or await reached(stack, ctl["backup"]))

    assert await eventually(control_escalated, within=60), "the clock moved nothing"
    after = await reached(stack, on_call, backup)
    assert after == before, after
    rows = await page_rows(stack, pid)
    assert all(n["status"] != "escalated" for n in rows), rows
    assert not any(":esc" in n["dedupe_key"] for n in rows), rows

    # Close with an outcome and a note: off the worklist, its record on the patient page.
    await alert.locator("summary").click()
    await alert.get_by_label("Called the patient").check()
    await alert.get_by_label("Note").fill("seen in clinic today")
    await alert.get_by_role("button", name="Close alert").click()
    await page.wait_for_url(f"{CONSOLE}/patients/{pid}")
    state = page.locator("table.alerts tr.alert .state").first
    await expect(state).to_contain_text("closed: Called the patient")
    await expect(state).to_contain_text("seen in clinic today")
    await page.goto(CONSOLE + "/")
    await expect(page.locator(f'tr.alert:has(a[href="/patients/{pid}"])')).to_have_count(0)

    # The other pages pass axe too: the patient list, the enrollment form, an error page.
    await page.goto(f"{CONSOLE}/patients?q={pid}")
    await expect(page.locator(f'[data-patient-id="{pid}"]')).to_have_count(1)
    await axe_check(page, "patient list")
    await page.goto(CONSOLE + "/enroll")
    await axe_check(page, "enrollment form")
    error = await page.goto(CONSOLE + "/patients/no-such-patient")
    assert error is not None
    assert error.status == 403
    await axe_check(page, "error page")

    # The access token is refreshed when it expires; a refused refresh means signing in
    # again (here silently: the IdP's session is still open).
    (cookie,) = [c for c in await context.cookies(CONSOLE) if c["name"] == COOKIE]
    session = await db.fetchrow(
        "SELECT session_hash, access_token FROM console.sessions WHERE session_hash = $1",
        hashlib.sha256(cookie["value"].encode()).hexdigest(),
    )
    assert session is not None
    await db.execute(
        "UPDATE console.sessions SET access_expires_at = now() - interval '1 minute'"
        " WHERE session_hash = $1", session["session_hash"],
    )  # fmt: skip
    await page.goto(CONSOLE + "/")
    await expect(page.locator("h1")).to_have_text("Worklist")
    refreshed = await db.fetchval(
        "SELECT access_token FROM console.sessions WHERE session_hash = $1",
        session["session_hash"],
    )
    assert refreshed
    assert refreshed != session["access_token"]
    await db.execute(
        "UPDATE console.sessions SET access_expires_at = now() - interval '1 minute',"
        " refresh_token = 'revoked' WHERE session_hash = $1", session["session_hash"],
    )  # fmt: skip
    visited: list[str] = []
    page.on("request", lambda req: visited.append(req.url))
    await page.goto(CONSOLE + "/")
    await expect(page.locator("h1")).to_have_text("Worklist")
    assert any(u.startswith(CONSOLE + "/auth/login") for u in visited), visited
    assert await db.fetchval(
        "SELECT count(*) FROM console.sessions WHERE session_hash = $1", session["session_hash"]
    ) == 0  # fmt: skip

    # Logout ends the console's session and the IdP's.
    (cookie,) = [c for c in await context.cookies(CONSOLE) if c["name"] == COOKIE]
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(CONSOLE + "/signed-out")
    await expect(page.locator("h1")).to_have_text("Signed out")
    await axe_check(page, "signed-out page")
    async with httpx.AsyncClient(base_url=CONSOLE, cookies={COOKIE: cookie["value"]}) as old:
        r = await old.get("/")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/auth/login")
        partial = await old.get("/worklist/rows", headers={"HX-Request": "true"})
        assert partial.status_code == 401
        assert partial.headers["HX-Refresh"] == "true"
    await page.goto(CONSOLE + "/")
    assert page.url.startswith(ISSUER + "/protocol/openid-connect/auth?"), page.url
    await expect(page.locator("#password")).to_be_visible()
    await context.close()

    # Tidy: the control page is acknowledged, so it stops paging.
    for n in await page_rows(stack, control["patient_id"]):
        if ":esc" not in n["dedupe_key"]:
            await stack.notifier.post(f"/v1/alerts/{n['notification_id']}/ack")


async def test_a_clinician_of_another_team_gets_403_for_the_patient(
    stack: Stack, browser: Browser
) -> None:
    patient = await enroll(stack, "team-a", days=5)
    pid = patient["patient_id"]
    ana, cara = demo_user("team-a"), demo_user("team-b")
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, ana)

    async def visible() -> bool:
        r = await page.goto(f"{CONSOLE}/patients/{pid}")
        return r is not None and r.status == 200

    assert await eventually(visible, within=30), "the patient never reached the console"
    await context.close()

    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, cara)
    r = await page.goto(f"{CONSOLE}/patients/{pid}")
    assert r is not None
    assert r.status == 403
    await expect(page.locator("h1")).to_have_text("Not your patient")
    assert pid not in await page.locator("main").inner_text()
    await context.close()


async def test_a_sign_in_is_bound_to_its_browser_and_its_state_is_single_use() -> None:
    async def start(client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, str]]:
        started = await client.get("/auth/login", params={"next": "//evil.example/"})
        assert started.status_code == 303
        to_idp = httpx.URL(started.headers["location"])
        assert str(to_idp).startswith(ISSUER + "/protocol/openid-connect/auth?")
        set_cookie = started.headers["set-cookie"]
        for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/auth"):
            assert flag.lower() in set_cookie.lower(), set_cookie
        # A Secure cookie: sent by hand, as a browser would to this loopback origin.
        value = started.cookies["hfs-console-signin"]
        return dict(to_idp.params), {"Cookie": f"hfs-console-signin={value}"}

    async with httpx.AsyncClient(base_url=CONSOLE) as client:
        params, browser_a = await start(client)
        assert params["code_challenge_method"] == "S256"
        assert params["response_type"] == "code"
        assert len(params["state"]) >= 32
        assert len(params["nonce"]) >= 32
        _, browser_b = await start(client)

        async def callback(headers: dict[str, str], state: str) -> httpx.Response:
            return await client.get("/auth/callback", headers=headers,
                                    params={"state": state, "code": "not-a-code"})  # fmt: skip

        # Another browser cannot finish it, and a made-up state is refused.
        other = await callback(browser_b, params["state"])
        assert other.status_code == 400
        assert "expired or was not started here" in other.text
        assert (await callback(browser_a, "made-up")).status_code == 400
        # A code the IdP never issued is refused, and the state is used up by trying.
        bad = await callback(browser_a, params["state"])
        assert bad.status_code == 400
        assert "did not accept the code" in bad.text
        again = await callback(browser_a, params["state"])
        assert again.status_code == 400
        assert "expired or was not started here" in again.text
        assert "set-cookie" not in bad.headers


async def test_someone_who_is_not_a_clinician_is_refused_and_may_sign_out(
    browser: Browser,
) -> None:
    users = json.loads((ROOT / ".run" / "demo-users.json").read_text())
    operator = next(u for u in users if u["roles"] == ["operator"])
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(CONSOLE + "/")
    await page.locator("#username").fill(operator["username"])
    await page.locator("#password").fill(operator["password"])
    async with page.expect_response(lambda r: r.url == CONSOLE + "/") as answer:
        await page.locator("#kc-login").click()
    assert (await answer.value).status == 403
    await expect(page.locator("h1")).to_have_text("Not allowed")
    await axe_check(page, "refusal page")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(CONSOLE + "/signed-out")
    assert not [c for c in await context.cookies(CONSOLE) if c["name"] == COOKIE]
    await context.close()
