"""The services the console calls on a user's behalf, with that user's token."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def field_errors(self) -> dict[str, str]:
        """The contract's ``error.fields`` as field → message (first message per field)."""
        out: dict[str, str] = {}
        for f in (self.body.get("error") or {}).get("fields") or []:
            if isinstance(f, dict) and "field" in f:
                out.setdefault(str(f["field"]), str(f.get("message", "invalid")))
        return out

    @property
    def message(self) -> str:
        err = self.body.get("error") or {}
        return str(err.get("message") or f"The service answered {self.status}.")


UNREACHABLE = Answer(503, {"error": {"code": "unavailable", "message": "Service unreachable."}})


class Services:
    def __init__(self, ingest: str, assessor: str, notifier: str, timeout: float = 10.0) -> None:
        self.ingest = httpx.AsyncClient(base_url=ingest, timeout=timeout)
        self.assessor = httpx.AsyncClient(base_url=assessor, timeout=timeout)
        self.notifier = httpx.AsyncClient(base_url=notifier, timeout=timeout)

    async def close(self) -> None:
        for c in (self.ingest, self.assessor, self.notifier):
            await c.aclose()

    @staticmethod
    async def _call(
        client: httpx.AsyncClient, method: str, path: str, token: str, **kw: Any
    ) -> Answer:
        try:
            r = await client.request(
                method, path, headers={"Authorization": f"Bearer {token}"}, **kw
            )
        except httpx.HTTPError as exc:
            log.warning("%s %s unreachable: %s", method, client.base_url, type(exc).__name__)
            return UNREACHABLE
        try:
            body = r.json() if r.content else {}
        except ValueError:
            body = {}
        return Answer(r.status_code, body if isinstance(body, dict) else {})

    async def recovery(self, token: str, patient_id: str) -> Answer:
        return await self._call(self.assessor, "GET", f"/v1/patients/{patient_id}/recovery", token)

    async def notifications(self, token: str, patient_id: str) -> Answer:
        return await self._call(
            self.notifier, "GET", f"/v1/patients/{patient_id}/notifications", token
        )

    async def page_statuses(
        self, token: str, alert_ids: Iterable[uuid.UUID]
    ) -> dict[str, dict[str, Any]]:
        """Page status by alert id; empty when the notifier cannot say (shown as unknown)."""
        ids = [str(i) for i in alert_ids]
        if not ids:
            return {}
        answer = await self._call(self.notifier, "GET", "/v1/alerts", token,
                                  params={"ids": ",".join(ids)})  # fmt: skip
        if not answer.ok:
            return {}
        return {a["notification_id"]: a for a in answer.body.get("alerts", [])}

    async def acknowledge(self, token: str, alert_id: uuid.UUID) -> Answer:
        return await self._call(self.notifier, "POST", f"/v1/alerts/{alert_id}/ack", token)

    async def enroll(self, token: str, body: dict[str, Any]) -> Answer:
        return await self._call(self.ingest, "POST", "/v1/patients", token, json=body)

    async def consent(self, token: str, patient_id: str, consent: bool) -> Answer:
        return await self._call(
            self.ingest,
            "POST",
            f"/v1/patients/{patient_id}/consent",
            token,
            json={"sms_consent": consent},
        )
