"""Per-patient encryption of the patient data that travels in events (crypto-shredding).

Every patient has a random 256-bit data key. The fields that identify or describe the
patient (``SEALED_FIELDS``: phone, notes, the facts a message is rendered from) are
encrypted with it (AES-GCM) before an event is published and decrypted when it is read, so
the rules and templates see the same plaintext as before while Kafka's log, its replicas and
old segments hold only ciphertext. The associated data binds each ciphertext to the patient
and the field: a value copied into another patient's event, or another field, fails to open.

The data keys are wrapped by one master key (``MASTER_KEY``) and kept in ingest's schema
(:mod:`ingest.keys`); the other services ask ingest for a patient's key over an
authenticated endpoint (:class:`RemoteKeyring`) and keep it in memory. Erasing a patient
destroys the key: every copy of their data in the log is unreadable from that moment.

The wire form of a sealed value is the string ``enc:v1:<base64 nonce‖ciphertext‖tag>``;
a value without the prefix is plaintext (events written before encryption existed).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.events import PATIENT_ID_PATTERN, Envelope, Event, parse_event

log = logging.getLogger(__name__)

PREFIX = "enc:v1:"
_PATIENT_ID = re.compile(PATIENT_ID_PATTERN)
#: Patients per key request of ``RemoteKeyring.prefetch`` (and the endpoint's limit).
PREFETCH_BATCH = 500
NONCE_BYTES = 12
KEY_BYTES = 32

#: Which payload fields carry patient data, by event type. ``facts`` is sealed whole (it is
#: what a message is rendered from: excerpts of notes, the patient's id in a page).
SEALED_FIELDS: dict[str, tuple[str, ...]] = {
    "patient.enrolled": ("phone",),
    "symptom.reported": ("note",),
    "notification.send": ("to", "backup_to", "facts"),
    "alert.closed": ("note",),
}


class KeyUnavailable(Exception):
    """The patient has no data key (erased, or never enrolled): their data is unreadable.
    Consumers skip such an event; it is not an error to dead-letter."""


class SealError(ValueError):
    """A sealed value that does not open with the patient's key (tampered, or moved)."""


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def parse_master_key(text: str) -> bytes:
    """``MASTER_KEY`` is 32 random bytes, base64 (standard or URL-safe alphabet)."""
    try:
        raw = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("MASTER_KEY must be base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError("MASTER_KEY must be 32 bytes (base64 of 32 random bytes)")
    return raw


def _aad(patient_id: str, purpose: str) -> bytes:
    return f"hfs|{purpose}|{patient_id}".encode()


def wrap_key(master: bytes, patient_id: str, data_key: bytes) -> bytes:
    """The data key encrypted under the master key (bound to the patient)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master).encrypt(nonce, data_key, _aad(patient_id, "data-key"))


def unwrap_key(master: bytes, patient_id: str, wrapped: bytes) -> bytes:
    try:
        return AESGCM(master).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _aad(patient_id, "data-key")
        )
    except InvalidTag:
        raise SealError("the data key does not open with this master key") from None


def seal_bytes(key: bytes, patient_id: str, field: str, plaintext: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, _aad(patient_id, field))


def open_bytes(key: bytes, patient_id: str, field: str, sealed: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(patient_id, field)
        )
    except InvalidTag:
        raise SealError(f"{field} does not open with the patient's key") from None


def seal_value(key: bytes, patient_id: str, field: str, value: Any) -> str:
    """Any JSON value, sealed into the wire string."""
    plain = json.dumps(value, separators=(",", ":")).encode()
    return PREFIX + base64.b64encode(seal_bytes(key, patient_id, field, plain)).decode()


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def open_value(key: bytes, patient_id: str, field: str, token: str) -> Any:
    try:
        sealed = base64.b64decode(token[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SealError(f"{field} is not a sealed value") from None
    return json.loads(open_bytes(key, patient_id, field, sealed))


class Keyring(Protocol):
    """Where a patient's data key comes from (ingest's table, or ingest over HTTP)."""

    async def key(self, patient_id: str) -> bytes | None:
        """The patient's data key; ``None`` when there is none (erased or unknown)."""
        ...

    def cached(self, patient_id: str) -> bytes | None:
        """The key if it is at hand in memory (no I/O), else ``None``."""
        ...

    def forget(self, patient_id: str) -> None:
        """Drop the patient's key from memory (their erasure was seen)."""
        ...

    async def prefetch(self, patient_ids: set[str]) -> None:
        """Bring these patients' keys into memory in as few round trips as possible."""
        ...


class EventCodec:
    """Events to and from the wire, sealing ``SEALED_FIELDS`` with the patient's key."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def encode(self, event: Envelope) -> bytes:
        """The event's JSON with its patient fields sealed; ``KeyUnavailable`` when the
        patient has no key (erased meanwhile): then nothing about them may be published."""
        kind = str(getattr(event, "type", ""))
        fields = SEALED_FIELDS.get(kind, ())
        doc = event.model_dump(mode="json")
        payload = doc.get("payload")
        present = [f for f in fields if isinstance(payload, dict) and payload.get(f) is not None]
        if not present or event.patient_id is None:
            return json.dumps(doc, separators=(",", ":")).encode()
        key = await self.keyring.key(event.patient_id)
        if key is None:
            raise KeyUnavailable(kind)
        assert isinstance(payload, dict)
        for name in present:
            payload[name] = seal_value(key, event.patient_id, f"{kind}.{name}", payload[name])
        return json.dumps(doc, separators=(",", ":")).encode()

    async def decode(self, raw: bytes | str) -> Event:
        """The event with its fields opened. ``KeyUnavailable``: the patient was erased
        (skip the event); ``ValueError``/``ValidationError``: not an event (dead letter)."""
        if not isinstance(raw, bytes | str):
            raise ValueError("not an event (a tombstone?)")
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            return parse_event(raw)  # let validation say what is wrong
        kind = doc.get("type")
        patient_id = doc.get("patient_id")
        payload = doc.get("payload")
        fields = SEALED_FIELDS.get(kind, ()) if isinstance(kind, str) else ()
        sealed = [f for f in fields if isinstance(payload, dict) and is_sealed(payload.get(f))]
        if not sealed:
            return parse_event(raw)
        if not isinstance(patient_id, str):
            raise SealError("a sealed event without a patient")
        key = await self.keyring.key(patient_id)
        if key is None:
            raise KeyUnavailable(str(kind))
        assert isinstance(payload, dict)
        for name in sealed:
            payload[name] = open_value(key, patient_id, f"{kind}.{name}", payload[name])
        return parse_event(json.dumps(doc))


#: Where a service gets the bearer token it shows ingest's key endpoint.
TokenSource = Callable[[], Awaitable[str]]


def static_token(token: str) -> TokenSource:
    async def get() -> str:
        return token

    return get


def client_credentials(token_url: str, client_id: str, secret: str) -> TokenSource:
    """An OAuth2 client-credentials token from the identity provider, renewed before it
    expires (the service's own identity, not a person's)."""
    state: dict[str, Any] = {"token": None, "until": 0.0}
    lock = asyncio.Lock()

    async def get() -> str:
        async with lock:
            if state["token"] is None or time.monotonic() >= state["until"]:
                async with httpx.AsyncClient(timeout=5.0) as client:
                    response = await client.post(
                        token_url,
                        data={"grant_type": "client_credentials"},
                        auth=(client_id, secret),
                    )
                response.raise_for_status()
                body = response.json()
                state["token"] = str(body["access_token"])
                state["until"] = time.monotonic() + max(5.0, float(body.get("expires_in", 60)) - 30)
            return str(state["token"])

    return get


class RemoteKeyring:
    """Patients' data keys from ingest's internal endpoint, kept in memory.

    A missing key (404) is remembered for ``negative_ttl`` seconds only: a patient id can
    be enrolled again after an erasure, with a new key."""

    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        negative_ttl: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.negative_ttl = negative_ttl
        self._keys: dict[str, bytes] = {}
        self._missing: dict[str, float] = {}
        self._client = client
        self._loop: asyncio.AbstractEventLoop | None = None

    def cached(self, patient_id: str) -> bytes | None:
        return self._keys.get(patient_id)

    def forget(self, patient_id: str) -> None:
        self._keys.pop(patient_id, None)
        self._missing[patient_id] = time.monotonic()

    async def key(self, patient_id: str) -> bytes | None:
        found = self._keys.get(patient_id)
        if found is not None:
            return found
        missing_since = self._missing.get(patient_id)
        if missing_since is not None and time.monotonic() - missing_since < self.negative_ttl:
            return None
        url = f"{self.base_url}/internal/v1/keys/{patient_id}"
        headers = {"Authorization": f"Bearer {await self.token()}"}
        response = await self._http().get(url, headers=headers)
        if response.status_code == 404:
            self._missing[patient_id] = time.monotonic()
            return None
        response.raise_for_status()  # 401/403/5xx: a configuration or outage, not erasure
        key = base64.b64decode(response.json()["key"])
        if len(key) != KEY_BYTES:
            raise SealError("ingest answered a key of the wrong length")
        self._keys[patient_id] = key
        self._missing.pop(patient_id, None)
        return key

    async def prefetch(self, patient_ids: set[str]) -> None:
        """Fetch the keys not yet in memory in one request per ``PREFETCH_BATCH`` (a batch
        of events, or a catch-up, asks once instead of once per patient); a patient without
        a key is remembered as such for ``negative_ttl``."""
        now = time.monotonic()
        wanted = sorted(
            p
            for p in patient_ids
            if _PATIENT_ID.fullmatch(p)  # a record keyed otherwise is no patient's
            and p not in self._keys
            and not (p in self._missing and now - self._missing[p] < self.negative_ttl)
        )
        for i in range(0, len(wanted), PREFETCH_BATCH):
            chunk = wanted[i : i + PREFETCH_BATCH]
            response = await self._http().post(
                f"{self.base_url}/internal/v1/keys",
                json={"patient_ids": chunk},
                headers={"Authorization": f"Bearer {await self.token()}"},
            )
            response.raise_for_status()
            found: dict[str, str] = response.json()["keys"]
            for patient_id in chunk:
                encoded = found.get(patient_id)
                if encoded is None:
                    self._missing[patient_id] = time.monotonic()
                    continue
                key = base64.b64decode(encoded)
                if len(key) != KEY_BYTES:
                    raise SealError("ingest answered a key of the wrong length")
                self._keys[patient_id] = key
                self._missing.pop(patient_id, None)

    def _http(self) -> httpx.AsyncClient:
        """One keep-alive client per event loop (a catch-up fetches many keys in a row)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(timeout=5.0)
            self._loop = loop
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


#: What a key fetch raises when ingest is unreachable: transient, retry (never skip).
KEY_SERVICE_DOWN = (httpx.TransportError, httpx.HTTPStatusError, OSError, asyncio.TimeoutError)
