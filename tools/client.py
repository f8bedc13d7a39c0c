"""A small async client for the running stack, used by the scenarios and the demo."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def api_token() -> str:
    token = os.environ.get("API_TOKEN")
    if token:
        return token
    path = ROOT / ".run" / "api-token"
    if not path.exists():
        raise SystemExit("the stack is not running: start it with `make up`")
    return path.read_text().strip()


def _url(var: str, default: int) -> str:
    return f"http://127.0.0.1:{os.environ.get(var, default)}"


class StackError(Exception):
    pass


class RetryingTransport(httpx.AsyncHTTPTransport):
    """Retries what the contract calls safe to retry: no connection, and 503 (nothing was
    recorded). A service restarting under a demo or a drill is then a pause, not a crash."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        delay = 0.2
        for _ in range(40):
            try:
                response = await super().handle_async_request(request)
            except (httpx.ConnectError, httpx.RemoteProtocolError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if response.status_code != 503:
                return response
            await response.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return await super().handle_async_request(request)


class Stack:
    def __init__(self) -> None:
        headers = {"Authorization": f"Bearer {api_token()}"}
        # Idle connections are dropped before the services' 5 s keep-alive ends, so a request
        # never goes out on a connection the server is closing (a ReadError, not retried).
        limits = httpx.Limits(max_connections=32, keepalive_expiry=2.0)
        self.ingest = httpx.AsyncClient(
            base_url=_url("INGEST_PORT", 8080),
            headers=headers,
            timeout=15,
            limits=limits,
            transport=RetryingTransport(limits=limits),
        )
        self.assessor = httpx.AsyncClient(
            base_url=_url("ASSESSOR_PORT", 8081),
            headers=headers,
            timeout=15,
            transport=RetryingTransport(limits=limits),
        )
        self.notifier = httpx.AsyncClient(
            base_url=_url("NOTIFIER_PORT", 8082),
            headers=headers,
            timeout=15,
            transport=RetryingTransport(limits=limits),
        )
        self.sandbox = httpx.AsyncClient(
            base_url=_url("SANDBOX_PORT", 8090),
            timeout=15,
            transport=RetryingTransport(limits=limits),
        )

    async def __aenter__(self) -> Stack:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for c in (self.ingest, self.assessor, self.notifier, self.sandbox):
            await c.aclose()

    @staticmethod
    def _check(r: httpx.Response, *ok: int) -> Any:
        if r.status_code not in ok:
            raise StackError(f"{r.request.method} {r.request.url.path} → {r.status_code} {r.text}")
        return (
            r.json()
            if r.content and r.headers.get("content-type", "").startswith("application/json")
            else r.text
        )

    async def clock(self) -> tuple[dt.datetime | None, bool]:
        """The ingest clock: (now or None if a simulated clock was never set, simulated?)."""
        body = self._check(await self.ingest.get("/v1/clock"), 200)
        now = dt.datetime.fromisoformat(body["now"]) if body.get("now") else None
        return now, bool(body["simulated"])

    async def set_clock(self, now: dt.datetime) -> None:
        self._check(await self.ingest.post("/v1/clock", json={"now": now.isoformat()}), 202)

    async def enroll(self, body: dict[str, Any]) -> str:
        return str(self._check(await self.ingest.post("/v1/patients", json=body), 202)["event_id"])

    async def report(self, body: dict[str, Any]) -> str:
        r = await self.ingest.post("/v1/symptom-reports", json=body)
        return str(self._check(r, 202)["event_id"])

    async def text_in(self, phone: str, body: str) -> dict[str, Any]:
        r = await self.sandbox.post("/sandbox/inbound", json={"from": phone, "body": body})
        result: dict[str, Any] = self._check(r, 200)
        return result

    async def recovery(self, patient_id: str) -> dict[str, Any] | None:
        r = await self.assessor.get(f"/v1/patients/{patient_id}/recovery")
        if r.status_code == 404:
            return None
        result: dict[str, Any] = self._check(r, 200)
        return result

    async def notifications(self, patient_id: str) -> list[dict[str, Any]]:
        r = await self.notifier.get(f"/v1/patients/{patient_id}/notifications")
        if r.status_code == 404:
            return []  # an erased patient
        return list(self._check(r, 200)["notifications"])

    async def erasure(self, patient_id: str) -> dict[str, Any] | None:
        """The patient's erasure status; None when there is no erasure."""
        r = await self.ingest.get(f"/v1/patients/{patient_id}/erasure")
        if r.status_code == 404:
            return None
        result: dict[str, Any] = self._check(r, 200)
        return result

    async def texts_to(self, phone: str) -> list[dict[str, Any]]:
        r = await self.sandbox.get("/sandbox/messages", params={"to": phone})
        return [m for m in self._check(r, 200)["messages"] if m["to"] == phone]


async def eventually(probe: Any, within: float = 20.0, every: float = 0.2) -> Any:
    """Poll the async ``probe()`` until it returns something truthy (or time runs out)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await probe()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(every)


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's end offset of ``topic`` (metadata refreshed once for a topic this
    client has not seen yet)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from shared.kafka_security import client_options

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, **client_options(), enable_auto_commit=False)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic) or set()
        if not parts:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(topic) or set()
        ends = await c.end_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await c.stop()


async def consumers_caught_up(
    bootstrap: str, prefixes: tuple[str, ...] = ("assessor", "notifier")
) -> bool:
    """True when every consumer group named with one of ``prefixes`` has committed up to the
    end of every partition it reads (the pipeline has nothing left in flight)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.kafka_security import client_options

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options())
    probe = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, **client_options(), enable_auto_commit=False
    )
    await admin.start()
    await probe.start()
    try:
        groups = [
            g[0] for g in await admin.list_consumer_groups() if str(g[0]).startswith(prefixes)
        ]
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group)
            if not committed:
                continue
            ends = await probe.end_offsets(list(committed))
            if any(meta.offset < ends[tp] for tp, meta in committed.items()):
                return False
        return True
    finally:
        await probe.stop()
        await admin.close()
