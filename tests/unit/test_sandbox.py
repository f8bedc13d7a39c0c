"""The SMS sandbox driven by the real Twilio SDK over real HTTP (uvicorn in threads)."""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from sms_sandbox.app import create_app
from sms_sandbox.settings import SandboxSettings
from sms_sandbox.twilio_wire import num_segments, rfc2822
from sms_sandbox.webhooks import twiml_replies
from tests.servers import ServerThread

ACCOUNT_SID = "AC" + "1234abcd" * 4
AUTH_TOKEN = "unit-test-auth-token"
SERVICE_NUMBER = "+15005550006"
PATIENT = "+15555550123"
PUBLIC_BASE_URL = "https://ingest.example.test"
SIGNED_INBOUND_URL = PUBLIC_BASE_URL + "/v1/twilio/inbound"


# --- servers in threads -----------------------------------------------------------------------


@dataclass
class Hit:
    path: str
    url: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class Receiver:
    """Stands in for the notifier's status-callback endpoint and for ingest."""

    hits: queue.Queue[Hit] = field(default_factory=queue.Queue)
    lock: threading.Lock = field(default_factory=threading.Lock)
    fail_next: int = 0  # answer this many more requests with 500
    ingest_status: int = 200
    ingest_body: str = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<Response><Message>Thanks &amp; noted: severity 2.</Message></Response>"
    )

    def reset(self) -> None:
        with self.lock:
            self.fail_next = 0
            self.ingest_status = 200
            self.ingest_body = Receiver.ingest_body
        while not self.hits.empty():
            self.hits.get_nowait()

    async def handle(self, request: Request) -> Response:
        raw = (await request.body()).decode()
        hit = Hit(
            path=request.url.path,
            url=str(request.url),
            headers=dict(request.headers),
            form=dict(parse_qsl(raw, keep_blank_values=True)),
        )
        with self.lock:
            failing = self.fail_next > 0
            if failing:
                self.fail_next -= 1
        if failing:
            return Response("boom", status_code=500)
        self.hits.put(hit)
        if request.url.path.startswith("/ingest/"):
            return Response(self.ingest_body, self.ingest_status, media_type="text/xml")
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])

    def next_hit(self, timeout: float = 5.0) -> Hit:
        return self.hits.get(timeout=timeout)


class SandboxHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """Sends the SDK's ``https://api.twilio.com`` requests to the sandbox instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=10)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        prefix = "https://api.twilio.com"
        if url.startswith(prefix):
            url = self.base_url + url[len(prefix) :]
        return super().request(method, url, *args, **kwargs)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with ServerThread(rec.app()) as server:
        yield rec, server.url


@pytest.fixture(scope="module")
def sandbox_url(receiver: tuple[Receiver, str]) -> Iterator[str]:
    _, receiver_url = receiver
    settings = SandboxSettings(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=SERVICE_NUMBER,
        status_callback_url=None,
        public_base_url=PUBLIC_BASE_URL,
        ingest_url=receiver_url + "/ingest/v1/twilio/inbound",
        callback_delay_ms=20,
        callback_attempts=3,
        callback_timeout_s=2.0,
    )
    with ServerThread(create_app(settings)) as server:
        yield server.url


@pytest.fixture(scope="module")
def http(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> None:
    if "sandbox_url" not in request.fixturenames:
        return
    http: httpx.Client = request.getfixturevalue("http")
    rec, _ = request.getfixturevalue("receiver")
    http.delete("/sandbox/messages").raise_for_status()
    http.post("/sandbox/faults", json={"mode": "none"}).raise_for_status()
    rec.reset()


@pytest.fixture
def client(sandbox_url: str) -> Client:
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=SandboxHttpClient(sandbox_url))


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# --- Messages API through the SDK ------------------------------------------------------------


def test_create_returns_a_parsed_message_instance(client: Client) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    message = client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="Day 5: normal.")

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.status == "queued"
    assert message.body == "Day 5: normal."
    assert message.to == PATIENT
    assert message.from_ == SERVICE_NUMBER
    assert message.account_sid == ACCOUNT_SID
    assert message.direction == "outbound-api"
    assert message.api_version == "2010-04-01"
    assert message.num_segments == "1"
    assert message.error_code is None
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json"
    assert isinstance(message.date_created, dt.datetime)
    assert message.date_created >= before
    assert message.date_created <= dt.datetime.now(dt.UTC)


def test_messaging_service_sid_is_accepted_in_place_of_from(client: Client) -> None:
    service = "MG" + "0" * 32
    message = client.messages.create(to=PATIENT, messaging_service_sid=service, body="hi")
    assert message.messaging_service_sid == service
    assert message.from_ == SERVICE_NUMBER


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", 21211),
        ("+15005550002", 21612),
        ("+15005550003", 21408),
        ("+15005550004", 21610),
        ("+15005550009", 21614),
        ("5555550123", 21211),
        ("+1 555 555 0123", 21211),
    ],
)
def test_magic_and_invalid_numbers_raise_twilio_errors(
    client: Client, http: httpx.Client, to: str, code: int
) -> None:
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to=to, from_=SERVICE_NUMBER, body="hello")
    assert info.value.code == code
    assert info.value.status == 400
    assert to not in info.value.msg  # no phone numbers in error text
    assert http.get("/sandbox/messages").json() == {"messages": []}


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": PATIENT, "from_": SERVICE_NUMBER}, 21602),
        ({"to": PATIENT, "from_": SERVICE_NUMBER, "body": "   "}, 21602),
        ({"to": "", "from_": SERVICE_NUMBER, "body": "x"}, 21604),
        ({"to": PATIENT, "body": "x"}, 21603),
        ({"to": PATIENT, "from_": "SANDBOX", "body": "x"}, 21606),
        ({"to": PATIENT, "from_": "+15005550007", "body": "x"}, 21606),
        ({"to": PATIENT, "from_": SERVICE_NUMBER, "body": "x" * 1601}, 21617),
        ({"to": PATIENT, "from_": SERVICE_NUMBER, "body": "x", "status_callback": "nope"}, 21609),
    ],
)
def test_missing_or_bad_parameters(client: Client, kwargs: dict[str, Any], code: int) -> None:
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(**kwargs)
    assert (info.value.code, info.value.status) == (code, 400)


def test_bad_credentials_raise_20003(sandbox_url: str) -> None:
    wrong_token = Client(ACCOUNT_SID, "wrong", http_client=SandboxHttpClient(sandbox_url))
    with pytest.raises(TwilioRestException) as info:
        wrong_token.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="x")
    assert (info.value.code, info.value.status) == (20003, 401)

    other_account = "AC" + "f" * 32
    wrong_sid = Client(other_account, AUTH_TOKEN, http_client=SandboxHttpClient(sandbox_url))
    with pytest.raises(TwilioRestException) as info:
        wrong_sid.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="x")
    assert (info.value.code, info.value.status) == (20003, 401)


def test_unauthenticated_raw_request_gets_twilio_error_body(http: httpx.Client) -> None:
    r = http.post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", data={"To": PATIENT})
    assert r.status_code == 401
    assert r.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


def test_fetch_reconciles_to_delivered(client: Client) -> None:
    sent = client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="fetch me")
    fetched = client.messages(sent.sid).fetch()
    assert fetched.sid == sent.sid
    assert fetched.body == "fetch me"

    eventually(lambda: client.messages(sent.sid).fetch().status == "delivered")
    delivered = client.messages(sent.sid).fetch()
    assert isinstance(delivered.date_sent, dt.datetime)


def test_fetch_unknown_sid_is_20404(client: Client) -> None:
    with pytest.raises(TwilioRestException) as info:
        client.messages("SM" + "0" * 32).fetch()
    assert (info.value.code, info.value.status) == (20404, 404)


def test_sdk_delete_removes_the_message_and_its_body(client: Client) -> None:
    sent = client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="erase me")
    kept = client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="keep me")
    assert client.messages(sent.sid).delete() is True  # 204
    with pytest.raises(TwilioRestException) as info:
        client.messages(sent.sid).fetch()
    assert info.value.status == 404
    assert [m.body for m in client.messages.list(to=PATIENT)] == ["keep me"]
    assert client.messages(kept.sid).fetch().body == "keep me"


def test_sdk_delete_of_an_unknown_sid_is_20404(client: Client) -> None:
    with pytest.raises(TwilioRestException) as info:
        client.messages("SM" + "0" * 32).delete()
    assert (info.value.code, info.value.status) == (20404, 404)


def test_sdk_list_filters_by_to(client: Client) -> None:
    client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="one")
    client.messages.create(to="+15555550999", from_=SERVICE_NUMBER, body="two")
    listed = client.messages.list(to=PATIENT)
    assert [m.body for m in listed] == ["one"]


def test_sdk_list_is_newest_first_and_limited(client: Client) -> None:
    for body in ("one", "two", "three"):
        client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body=body)
    assert [m.body for m in client.messages.list(to=PATIENT, limit=2, page_size=2)] == [
        "three",
        "two",
    ]


def test_sdk_list_filters_by_date_sent(client: Client) -> None:
    sent = client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="dated")
    eventually(lambda: client.messages(sent.sid).fetch().date_sent is not None)
    when = client.messages(sent.sid).fetch().date_sent
    hour = dt.timedelta(hours=1)
    assert [m.sid for m in client.messages.list(to=PATIENT, date_sent_after=when - hour)] == [
        sent.sid
    ]
    assert client.messages.list(to=PATIENT, date_sent_after=when + hour) == []
    assert client.messages.list(to=PATIENT, date_sent_before=when - hour) == []
    assert len(client.messages.list(to=PATIENT, date_sent=when)) == 1


# --- the notifier's adapter against the sandbox: every path it relies on -----------------------


def notifier_sender(sandbox_url: str, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    from notifier.sms import TwilioSmsSender

    return TwilioSmsSender(
        ACCOUNT_SID,
        AUTH_TOKEN,
        from_=SERVICE_NUMBER,
        messaging_service_sid=None,
        base_url=sandbox_url,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("fault", "to", "code", "permanent", "ambiguous"),
    [
        ({"mode": "429", "count": 1}, PATIENT, 20429, False, False),
        ({"mode": "500", "count": 1}, PATIENT, 20500, False, True),
        ({"mode": "drop", "count": 1}, PATIENT, None, False, True),
        ({"mode": "slow", "count": 1, "delay_ms": 1500}, PATIENT, None, False, True),
        (None, "+15005550004", 21610, True, False),
        (None, "+15005550001", 21211, True, False),
        (None, "+15005550009", 21614, True, False),
        (None, "+15005550002", 21612, True, False),
    ],
)
def test_notifier_adapter_classifies_every_error(
    sandbox_url: str,
    http: httpx.Client,
    fault: dict[str, Any] | None,
    to: str,
    code: int | None,
    permanent: bool,
    ambiguous: bool,
) -> None:
    from notifier.sms import SendError

    sender = notifier_sender(sandbox_url, timeout=0.5)
    if fault:
        http.post("/sandbox/faults", json=fault).raise_for_status()
    with pytest.raises(SendError) as info:
        asyncio.run(sender.send(to, "hello"))
    assert (info.value.code, info.value.permanent, info.value.ambiguous) == (
        code,
        permanent,
        ambiguous,
    )
    assert to not in str(info.value)
    if fault and fault["mode"] == "slow":  # the provider had the request: the text exists
        eventually(lambda: len(http.get("/sandbox/messages").json()["messages"]) == 1)


def test_notifier_adapter_sends_and_finds_its_message_again(
    sandbox_url: str, http: httpx.Client
) -> None:
    sender = notifier_sender(sandbox_url)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    result = asyncio.run(sender.send(PATIENT, "find me"))
    assert re.fullmatch(r"SM[0-9a-f]{32}", result.provider_sid)
    assert result.status == "queued"
    found = asyncio.run(sender.recent(PATIENT, before))
    assert [(m.sid, m.body, m.to) for m in found] == [(result.provider_sid, "find me", PATIENT)]
    assert found[0].date_created is not None
    assert (
        asyncio.run(sender.recent(PATIENT, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))) == []
    )
    assert asyncio.run(sender.recent("+15555550999", before)) == []


def test_notifier_adapter_lookup_errors_are_send_errors(sandbox_url: str) -> None:
    from notifier.sms import SendError, TwilioSmsSender

    wrong = TwilioSmsSender(
        ACCOUNT_SID, "wrong", from_=SERVICE_NUMBER, messaging_service_sid=None,
        base_url=sandbox_url,
    )  # fmt: skip
    with pytest.raises(SendError) as info:
        asyncio.run(wrong.recent(PATIENT, dt.datetime.now(dt.UTC)))
    assert str(info.value) == "twilio list 401"
    closed = notifier_sender("http://127.0.0.1:9")
    with pytest.raises(SendError):
        asyncio.run(closed.recent(PATIENT, dt.datetime.now(dt.UTC)))


def test_status_callback_url_is_passed_and_signed(
    sandbox_url: str, receiver: tuple[Receiver, str]
) -> None:
    from notifier.sms import TwilioSmsSender

    rec, receiver_url = receiver
    callback = receiver_url + "/v1/twilio/status"
    sender = TwilioSmsSender(
        ACCOUNT_SID, AUTH_TOKEN, from_=SERVICE_NUMBER, messaging_service_sid=None,
        base_url=sandbox_url, status_callback=callback,
    )  # fmt: skip
    result = asyncio.run(sender.send(PATIENT, "with a callback"))
    hits = [rec.next_hit(), rec.next_hit()]
    assert [h.form["MessageStatus"] for h in hits] == ["sent", "delivered"]
    for hit in hits:
        assert hit.form["MessageSid"] == result.provider_sid
        assert RequestValidator(AUTH_TOKEN).validate(
            callback, hit.form, hit.headers["x-twilio-signature"]
        )


# --- fault injection --------------------------------------------------------------------------


def test_fault_429_for_a_count_then_recovers(client: Client, http: httpx.Client) -> None:
    r = http.post("/sandbox/faults", json={"mode": "429", "count": 2})
    assert r.json() == {"mode": "429", "count": 2, "delay_ms": 0}
    for _ in range(2):
        with pytest.raises(TwilioRestException) as info:
            client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="x")
        assert (info.value.code, info.value.status) == (20429, 429)
    assert http.get("/sandbox/faults").json()["mode"] == "none"
    assert client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="x").status == "queued"
    assert len(http.get("/sandbox/messages").json()["messages"]) == 1


def test_fault_500_until_reset(client: Client, http: httpx.Client) -> None:
    http.post("/sandbox/faults", json={"mode": "500", "count": None})
    for _ in range(3):
        with pytest.raises(TwilioRestException) as info:
            client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="x")
        assert (info.value.code, info.value.status) == (20500, 500)
    assert http.get("/sandbox/faults").json() == {"mode": "500", "count": None, "delay_ms": 0}
    http.post("/sandbox/faults", json={"mode": "none"})
    client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="x")


def test_fault_slow_delays_then_succeeds(client: Client, http: httpx.Client) -> None:
    http.post("/sandbox/faults", json={"mode": "slow", "count": 1, "delay_ms": 300})
    started = time.monotonic()
    message = client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="x")
    assert time.monotonic() - started >= 0.3
    assert message.status == "queued"


def test_fault_drop_breaks_the_connection(client: Client, http: httpx.Client) -> None:
    http.post("/sandbox/faults", json={"mode": "drop", "count": 1})
    with pytest.raises(requests.exceptions.RequestException):
        client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="x")
    assert http.get("/sandbox/messages").json() == {"messages": []}
    assert client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="x").status == "queued"


def test_fault_request_is_validated(http: httpx.Client) -> None:
    assert http.post("/sandbox/faults", json={"mode": "404"}).status_code == 422
    assert http.post("/sandbox/faults", json={"mode": "slow", "delay_ms": -1}).status_code == 422


# --- sandbox listing ------------------------------------------------------------------------


def test_sandbox_messages_lists_oldest_first_and_filters(
    client: Client, http: httpx.Client
) -> None:
    first = client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="first")
    other = client.messages.create(to="+15555550999", from_=SERVICE_NUMBER, body="other")
    second = client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="second")

    everything = http.get("/sandbox/messages").json()["messages"]
    assert [m["sid"] for m in everything] == [first.sid, other.sid, second.sid]
    row = everything[0]
    assert {"sid", "to", "from", "body", "status", "date_created"} <= row.keys()
    assert (row["to"], row["from"], row["body"]) == (PATIENT, SERVICE_NUMBER, "first")
    created = dt.datetime.fromisoformat(row["date_created"])
    assert created.utcoffset() == dt.timedelta(0)

    mine = http.get("/sandbox/messages", params={"to": PATIENT}).json()["messages"]
    assert [m["body"] for m in mine] == ["first", "second"]

    assert http.delete("/sandbox/messages").json() == {"deleted": 3}
    assert http.get("/sandbox/messages").json() == {"messages": []}


# --- status callbacks -------------------------------------------------------------------------


def test_status_callbacks_are_signed_and_ordered(
    client: Client, receiver: tuple[Receiver, str]
) -> None:
    rec, receiver_url = receiver
    callback_url = receiver_url + "/callbacks/status?tenant=1"
    message = client.messages.create(
        to=PATIENT, from_=SERVICE_NUMBER, body="cb", status_callback=callback_url
    )
    validator = RequestValidator(AUTH_TOKEN)
    statuses = []
    for _ in range(2):
        hit = rec.next_hit()
        assert hit.path == "/callbacks/status"
        assert validator.validate(callback_url, hit.form, hit.headers["x-twilio-signature"])
        assert not RequestValidator("other-token").validate(
            callback_url, hit.form, hit.headers["x-twilio-signature"]
        )
        assert hit.form["MessageSid"] == hit.form["SmsSid"] == message.sid
        assert hit.form["AccountSid"] == ACCOUNT_SID
        assert (hit.form["To"], hit.form["From"]) == (PATIENT, SERVICE_NUMBER)
        assert hit.form["MessageStatus"] == hit.form["SmsStatus"]
        assert hit.form["ApiVersion"] == "2010-04-01"
        statuses.append(hit.form["MessageStatus"])
    assert statuses == ["sent", "delivered"]
    assert client.messages(message.sid).fetch().status == "delivered"


def test_status_callback_is_retried_after_a_failure(
    client: Client, receiver: tuple[Receiver, str]
) -> None:
    rec, receiver_url = receiver
    rec.fail_next = 1
    callback_url = receiver_url + "/callbacks/status"
    client.messages.create(
        to=PATIENT, from_=SERVICE_NUMBER, body="cb", status_callback=callback_url
    )
    statuses = [rec.next_hit().form["MessageStatus"], rec.next_hit().form["MessageStatus"]]
    assert statuses == ["sent", "delivered"]


def test_unreachable_status_callback_does_not_hurt(client: Client, http: httpx.Client) -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/status"
    message = client.messages.create(
        to=PATIENT, from_=SERVICE_NUMBER, body="cb", status_callback=dead
    )
    eventually(lambda: client.messages(message.sid).fetch().status == "delivered", timeout=10)
    assert http.get("/healthz").json() == {"status": "ok"}


async def test_default_status_callback_url_from_settings(receiver: tuple[Receiver, str]) -> None:
    rec, receiver_url = receiver
    rec.reset()
    default_url = receiver_url + "/callbacks/default"
    app = create_app(
        SandboxSettings(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            status_callback_url=default_url,
            callback_delay_ms=0,
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as sandbox:
        r = await sandbox.post(
            f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
            data={"To": PATIENT, "From": SERVICE_NUMBER, "Body": "default"},
            auth=(ACCOUNT_SID, AUTH_TOKEN),
        )
        assert r.status_code == 201, r.text
        sid = r.json()["sid"]
        hits = [await asyncio.to_thread(rec.next_hit) for _ in range(2)]
        assert [(h.path, h.form["MessageSid"]) for h in hits] == [("/callbacks/default", sid)] * 2
        assert RequestValidator(AUTH_TOKEN).validate(
            default_url, hits[0].form, hits[0].headers["x-twilio-signature"]
        )
    await app.state.sandbox.aclose()


# --- inbound webhooks -------------------------------------------------------------------------


def test_inbound_posts_a_signed_webhook_and_records_the_reply(
    http: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    rec, _ = receiver
    r = http.post("/sandbox/inbound", json={"from": PATIENT, "body": "2"})
    assert r.status_code == 200
    result = r.json()
    assert result["status"] == 200
    assert "<Message>" in result["twiml"]

    hit = rec.next_hit()
    assert hit.path == "/ingest/v1/twilio/inbound"
    signature = hit.headers["x-twilio-signature"]
    assert RequestValidator(AUTH_TOKEN).validate(SIGNED_INBOUND_URL, hit.form, signature)
    assert hit.headers["content-type"].startswith("application/x-www-form-urlencoded")
    form = hit.form
    assert re.fullmatch(r"SM[0-9a-f]{32}", form["MessageSid"])
    assert form["SmsSid"] == form["SmsMessageSid"] == form["MessageSid"] == result["message_sid"]
    assert (form["From"], form["To"], form["Body"]) == (PATIENT, SERVICE_NUMBER, "2")
    assert (form["AccountSid"], form["NumMedia"], form["ApiVersion"]) == (
        ACCOUNT_SID,
        "0",
        "2010-04-01",
    )

    rows = http.get("/sandbox/messages").json()["messages"]
    assert [(m["direction"], m["from"], m["to"], m["body"]) for m in rows] == [
        ("inbound", PATIENT, SERVICE_NUMBER, "2"),
        ("outbound-reply", SERVICE_NUMBER, PATIENT, "Thanks & noted: severity 2."),
    ]
    assert [m["sid"] for m in rows[1:]] == result["reply_sids"]


def test_inbound_passes_ingest_rejections_through(
    http: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    rec, _ = receiver
    rec.ingest_status = 403
    rec.ingest_body = "forbidden"
    r = http.post("/sandbox/inbound", json={"from": PATIENT, "body": "hi", "to": "+15005550010"})
    assert r.json()["status"] == 403
    assert r.json()["twiml"] == "forbidden"
    assert rec.next_hit().form["To"] == "+15005550010"
    rows = http.get("/sandbox/messages").json()["messages"]
    assert [m["direction"] for m in rows] == ["inbound"]


def test_inbound_validates_its_input(http: httpx.Client) -> None:
    assert http.post("/sandbox/inbound", json={"from": "555", "body": "x"}).status_code == 422
    assert http.post("/sandbox/inbound", json={"from": PATIENT}).status_code == 422
    assert http.post("/sandbox/inbound", content=b"[1]").status_code == 400


def test_html_form_reply_redirects_to_the_page(
    http: httpx.Client, receiver: tuple[Receiver, str]
) -> None:
    r = http.post("/sandbox/inbound", data={"from": PATIENT, "body": "3"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/#")
    assert receiver[0].next_hit().form["Body"] == "3"


# --- page, probes, metrics ----------------------------------------------------------------


def test_page_shows_conversations_escaped(client: Client, http: httpx.Client) -> None:
    client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="<b>Day 5</b> & fine")
    http.post("/sandbox/inbound", json={"from": PATIENT, "body": "<script>alert(1)</script>"})
    page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "&lt;b&gt;Day 5&lt;/b&gt; &amp; fine" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert html.index("Day 5") < html.index("alert(1)")  # oldest first
    assert 'action="/sandbox/inbound"' in html
    assert f'name="from" value="{PATIENT}"' in html


def test_probes_and_metrics_without_phone_numbers(client: Client, http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ok"}
    client.messages.create(to=PATIENT, from_=SERVICE_NUMBER, body="x")
    with pytest.raises(TwilioRestException):
        client.messages.create(to="+15005550004", from_=SERVICE_NUMBER, body="x")
    metrics = http.get("/metrics").text
    assert "# TYPE sandbox_messages_total counter" in metrics
    assert 'sandbox_messages_total{code="none",outcome="accepted"}' in metrics
    assert 'sandbox_messages_total{code="21610",outcome="rejected"}' in metrics
    assert "+1555" not in metrics
    assert "+1500" not in metrics


# --- wire helpers ---------------------------------------------------------------------------


def test_num_segments() -> None:
    assert num_segments("a" * 160) == 1
    assert num_segments("a" * 161) == 2
    assert num_segments("€" * 80) == 1  # extended GSM-7: two septets each
    assert num_segments("€" * 81) == 2
    assert num_segments("ж" * 70) == 1  # UCS-2
    assert num_segments("ж" * 71) == 2


def test_rfc2822_parses_with_the_sdk() -> None:
    from twilio.base import deserialize

    when = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    text = rfc2822(when)
    assert text == "Tue, 04 Mar 2025 05:06:07 +0000"
    assert deserialize.rfc2822_datetime(text) == when


def test_twiml_replies() -> None:
    assert twiml_replies("<Response/>") == []
    assert twiml_replies("not xml") == []
    assert twiml_replies("<Response><Message><Body> hi </Body></Message></Response>") == [
        (None, "hi")
    ]
    assert twiml_replies('<Response><Message to="+15555550100">x</Message></Response>') == [
        ("+15555550100", "x")
    ]


# --- the Calls resource (page calls) ----------------------------------------------------------


def test_a_page_call_through_the_sdk_rings_and_a_keypress_reaches_the_action_url(
    sandbox_url: str, receiver: tuple[Receiver, str], http: httpx.Client
) -> None:
    from notifier.sms import SendError, twilio_client
    from notifier.voice import TwilioCaller, ack_url, call_twiml

    rec, receiver_url = receiver
    http.delete("/sandbox/calls").raise_for_status()
    callback = receiver_url + "/v1/twilio/voice/status"
    caller = TwilioCaller(
        twilio_client(ACCOUNT_SID, AUTH_TOKEN, sandbox_url, 10),
        from_=SERVICE_NUMBER,
        status_callback=callback,
    )
    action = ack_url(receiver_url, "7KQ2MX")
    twiml = call_twiml("The MVD clinic URGENT: worsening. Patient p-001.", action)
    placed = asyncio.run(caller.call(PATIENT, twiml))
    assert placed.provider_sid.startswith("CA")
    assert placed.status == "queued"

    statuses = [rec.next_hit().form["CallStatus"] for _ in range(3)]
    assert statuses == ["initiated", "ringing", "in-progress"]
    [listed] = http.get("/sandbox/calls", params={"to": PATIENT}).json()["calls"]
    assert listed["sid"] == placed.provider_sid
    assert "URGENT: worsening" in listed["said"]
    assert "Press 1 to acknowledge." in listed["said"]
    assert "📞" in http.get("/").text  # the page shows the call beside the texts

    pressed = http.post(f"/sandbox/calls/{placed.provider_sid}/press", json={"digits": "1"})
    assert pressed.status_code == 200, pressed.text
    gather = rec.next_hit()
    assert gather.url == action
    assert (gather.form["Digits"], gather.form["CallSid"], gather.form["To"]) == (
        "1",
        placed.provider_sid,
        PATIENT,
    )
    assert RequestValidator(AUTH_TOKEN).validate(
        action, gather.form, gather.headers["x-twilio-signature"]
    )
    assert rec.next_hit().form["CallStatus"] == "completed"
    again = http.post(f"/sandbox/calls/{placed.provider_sid}/press", json={"digits": "1"})
    assert again.status_code == 409  # the call is over

    http.post("/sandbox/faults", json={"mode": "500", "count": 1}).raise_for_status()
    with pytest.raises(SendError) as failed:
        asyncio.run(caller.call(PATIENT, twiml))
    assert failed.value.ambiguous
    assert not failed.value.permanent
    with pytest.raises(SendError) as invalid:
        asyncio.run(caller.call("+15005550001", "<Response><Say>x</Say></Response>"))
    assert invalid.value.permanent


def test_a_call_without_twiml_or_with_a_bad_number_is_refused(http: httpx.Client) -> None:
    url = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    auth = (ACCOUNT_SID, AUTH_TOKEN)
    r = http.post(url, data={"To": PATIENT, "From": SERVICE_NUMBER}, auth=auth)
    assert (r.status_code, r.json()["code"]) == (400, 21205)
    r = http.post(url, data={"To": "12", "Twiml": "<Response/>"}, auth=auth)
    assert (r.status_code, r.json()["code"]) == (400, 21211)
    assert http.post(url, data={"To": PATIENT, "Twiml": "<Response/>"}).status_code == 401
    r = http.post("/sandbox/calls/CA" + "0" * 32 + "/press", json={"digits": "1"})
    assert r.status_code == 404
