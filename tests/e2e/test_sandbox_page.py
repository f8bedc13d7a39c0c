"""The SMS sandbox's page in headless Chromium (Debian's, installed by deploy/chromium.sh):
a phone's conversation is shown, and replying as that phone adds the reply to it; a page
call is shown beside the texts, and pressing 1 on it answers the call."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.e2e.conftest import Stack, random_phone

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "sandbox-auth-token")
SERVICE_NUMBER = os.environ.get("TWILIO_FROM", "+15005550006")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run deploy/chromium.sh")
    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        await b.close()


async def test_the_page_shows_a_conversation_and_replies_as_that_phone(
    stack: Stack, browser: Browser
) -> None:
    phone = random_phone()
    outbound = f"How is your twitching today? ({uuid.uuid4().hex[:6]})"
    created = await stack.sandbox.post(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": phone, "From": SERVICE_NUMBER, "Body": outbound},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )
    assert created.status_code == 201, created.text

    page = await browser.new_page()
    try:
        await page.goto(str(stack.sandbox.base_url) + "/")
        section = page.locator(f'section[id="{phone}"]')
        await expect(section.locator("h2")).to_have_text(phone)
        await expect(section.locator("li.out .bubble")).to_have_text([outbound])

        reply = f"2 a bit better {uuid.uuid4().hex[:6]}"
        await section.locator('input[name="body"]').fill(reply)
        await section.locator("button").click()
        await page.wait_for_load_state()

        section = page.locator(f'section[id="{phone}"]')  # the page was reloaded
        await expect(section.locator("li.in .bubble")).to_contain_text([reply])
        await expect(section.locator("li .bubble").first).to_have_text(outbound)
    finally:
        await page.close()

    listed = (await stack.sandbox.get("/sandbox/messages", params={"to": SERVICE_NUMBER})).json()
    assert any(m["from"] == phone and m["body"] == reply for m in listed["messages"])


async def test_the_page_shows_a_call_beside_the_texts_and_presses_1(
    stack: Stack, browser: Browser
) -> None:
    phone = random_phone()
    said = f"The MVD clinic URGENT: possible complication reported ({uuid.uuid4().hex[:6]})"
    action = str(stack.ingest.base_url) + "/v1/twilio/voice?code=ZZZZZZ"
    twiml = (
        f'<Response><Gather numDigits="1" action="{action}"><Say>{said}</Say></Gather></Response>'
    )
    auth = (ACCOUNT_SID, AUTH_TOKEN)
    texted = await stack.sandbox.post(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": phone, "From": SERVICE_NUMBER, "Body": "URGENT page text"},
        auth=auth,
    )
    assert texted.status_code == 201, texted.text
    called = await stack.sandbox.post(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json",
        data={"To": phone, "From": SERVICE_NUMBER, "Twiml": twiml},
        auth=auth,
    )
    assert called.status_code == 201, called.text
    sid = called.json()["sid"]

    page = await browser.new_page()
    try:
        await page.goto(str(stack.sandbox.base_url) + "/")
        section = page.locator(f'section[id="{phone}"]')
        await expect(section.locator("li.out .bubble")).to_have_text(["URGENT page text"])
        await expect(section.locator("li.call .bubble")).to_contain_text([said])
        await section.locator("li.call button").click()
        await page.wait_for_load_state()
        section = page.locator(f'section[id="{phone}"]')
        await expect(section.locator("li.call .meta")).to_contain_text(["pressed 1"])
        await expect(section.locator("li.call button")).to_have_count(0)
    finally:
        await page.close()

    [call] = (await stack.sandbox.get("/sandbox/calls", params={"to": phone})).json()["calls"]
    assert (call["sid"], call["status"], call["digits"]) == (sid, "completed", "1")
