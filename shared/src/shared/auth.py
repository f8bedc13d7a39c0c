"""Who is calling, and what they may do: OIDC/OAuth2 access tokens checked the same way in
every service (ARCHITECTURE §8), and the contract's role / scope / care-team rules.

``Authenticator.authenticate`` turns an ``Authorization`` header into a ``Principal`` or
raises ``Unauthorized`` (→ 401 with ``WWW-Authenticate``). It checks a JWT's signature
against the issuer's JWKS (cached; fetched again, at most every ``JWKS_MIN_REFRESH_S``, when
a token names an unknown ``kid``, so a key rotation needs no restart), the issuer, the
audience, the expiry (with a small leeway) and pins the algorithm (RS256 by default: ``none``
and HMAC are refused before any key is looked up). Fetches run in a thread, never on the
event loop.

``may`` and ``may_see_team`` are pure: what a principal may do is decided from the token
alone, and the services add only the patient's team. A refusal is ``Forbidden`` (→ 403,
code ``forbidden``) and says nothing about the patient.

The development credential (``API_TOKEN``, written by ``make up`` into ``.run/api-token``)
is a principal with every role and scope and every team; ``CommonSettings`` refuses it
unless the service binds to loopback in development mode.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from pydantic import SecretStr

log = logging.getLogger(__name__)

ROLES = ("clinician", "approver", "operator", "admin")
SCOPES = ("patients:write", "reports:write", "patients:read")
#: In a token's teams claim: every care team (integrations not limited to teams).
ALL_TEAMS = "*"
JWKS_MIN_REFRESH_S = 10.0

Action = Literal[
    "patient.read",  # recovery, notifications
    "patient.write",  # enroll, update
    "report.write",  # symptom reports
    "page.ack",  # acknowledge a care-team page
    "audit.read",
    "patient.erase",  # erasure, and its status
    "clock",  # the simulated clock (development and test runs)
]

#: The contract's table: the roles and scopes that open each action.
ALLOWED: dict[Action, tuple[frozenset[str], frozenset[str]]] = {
    "patient.read": (frozenset({"clinician"}), frozenset({"patients:read"})),
    "patient.write": (frozenset({"clinician"}), frozenset({"patients:write"})),
    "report.write": (frozenset({"clinician"}), frozenset({"reports:write"})),
    "page.ack": (frozenset({"clinician"}), frozenset()),
    "audit.read": (frozenset({"admin"}), frozenset()),
    "patient.erase": (frozenset({"admin"}), frozenset()),
    "clock": (frozenset({"admin", "operator"}), frozenset()),
}


@dataclass(frozen=True)
class Principal:
    """The caller: a person (subject, name, the client they signed in through) or a system
    (a client's service account), with what the token grants."""

    sub: str
    name: str | None
    client: str | None
    roles: frozenset[str]
    scopes: frozenset[str]
    #: The care teams it may see; ``None``: every team.
    teams: frozenset[str] | None
    development: bool = False

    def describe(self) -> dict[str, str | None]:
        return {"sub": self.sub, "name": self.name, "client": self.client}


DEVELOPMENT_PRINCIPAL = Principal(
    sub="development",
    name="development credential (.run/api-token)",
    client="api-token",
    roles=frozenset(ROLES),
    scopes=frozenset(SCOPES),
    teams=None,
    development=True,
)


def may(principal: Principal, action: Action) -> bool:
    """Whether the token's roles or scopes open ``action`` (teams aside)."""
    roles, scopes = ALLOWED[action]
    return bool(principal.roles & roles or principal.scopes & scopes)


def may_see_team(principal: Principal, team: str | None) -> bool:
    """Whether a patient of ``team`` is within the caller's care teams. ``None``: the patient
    is unknown, which only a caller of every team may learn (else 403, existing or not)."""
    if principal.teams is None:
        return True
    return team is not None and team in principal.teams


class Unauthorized(Exception):
    """No token, or one that is not valid here: 401."""

    def __init__(self, message: str, error: str | None = "invalid_token") -> None:
        super().__init__(message)
        self.message = message
        self.error = error

    @property
    def www_authenticate(self) -> str:
        if self.error is None:
            return 'Bearer realm="hfs"'
        description = self.message.replace('"', "'")
        return f'Bearer realm="hfs", error="{self.error}", error_description="{description}"'


class Forbidden(Exception):
    """A valid token without the role, scope or team: 403."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str | None = None  # None: from the issuer's discovery document
    roles_claim: str = "roles"
    teams_claim: str = "teams"
    scope_claim: str = "scope"
    algorithms: tuple[str, ...] = ("RS256",)
    leeway_s: float = 30.0
    http_timeout_s: float = 5.0


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or a dotted path into nested objects (``realm_access.roles``)."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list | tuple):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def principal_from_claims(claims: Mapping[str, Any], config: OidcConfig) -> Principal:
    """The principal a verified token describes. An absent teams claim means no team
    (fails closed); ``*`` in it means every team."""
    teams = _strings(claim(claims, config.teams_claim))
    name = claims.get("name") or claims.get("preferred_username")
    client = claims.get("azp") or claims.get("client_id") or claims.get("appid")
    return Principal(
        sub=str(claims["sub"]),
        name=str(name) if name else None,
        client=str(client) if client else None,
        roles=_strings(claim(claims, config.roles_claim)) & frozenset(ROLES),
        scopes=_strings(claim(claims, config.scope_claim)) & frozenset(SCOPES),
        teams=None if ALL_TEAMS in teams else teams,
    )


def _get_json(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured http(s) URL
        return json.loads(response.read())


class Authenticator:
    def __init__(self, config: OidcConfig, dev_token: SecretStr | None = None) -> None:
        self.config = config
        self._dev_token = dev_token.get_secret_value().encode() if dev_token else None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._jwks_url = config.jwks_url
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, given = (authorization or "").partition(" ")
        token = given.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("A bearer token is required.", error=None)
        if self._dev_token is not None and token.count(".") != 2:
            if hmac.compare_digest(token.encode(), self._dev_token):
                return DEVELOPMENT_PRINCIPAL
            raise Unauthorized("The bearer token is not valid.")
        return principal_from_claims(await self.verify(token), self.config)

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token; ``Unauthorized`` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("The bearer token is not a valid JWT.") from None
        if header.get("alg") not in self.config.algorithms:
            raise Unauthorized("The token's signing algorithm is not accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("The token names no signing key.")
        key = await self._key(kid)
        if key is None:
            raise Unauthorized("The token is signed by an unknown key.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.config.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired.") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("The token is not meant for this API (audience).") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("The token comes from another issuer.") from None
        except jwt.PyJWTError:
            raise Unauthorized("The token's signature or claims are not valid.") from None
        return claims

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is None and time.monotonic() - self._fetched_at >= JWKS_MIN_REFRESH_S:
                await self._refresh()
                key = self._keys.get(kid)
        return key

    async def _refresh(self) -> None:
        """Fetch the issuer's keys (discovering their URL once)."""
        self._fetched_at = time.monotonic()
        timeout = self.config.http_timeout_s
        try:
            if self._jwks_url is None:
                discovery = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
                doc = await asyncio.to_thread(_get_json, discovery, timeout)
                self._jwks_url = str(doc["jwks_uri"])
            jwks = await asyncio.to_thread(_get_json, self._jwks_url, timeout)
            keys = jwt.PyJWKSet.from_dict(jwks).keys
        except (OSError, ValueError, KeyError, jwt.PyJWTError) as exc:
            # Keep the keys we have: a token signed by one of them still verifies.
            log.warning("could not fetch the issuer's signing keys: %s", type(exc).__name__)
            return
        self._keys = {k.key_id: k for k in keys if k.key_id and k.public_key_use in (None, "sig")}
        log.info("signing keys fetched", extra={"keys": len(self._keys)})

    async def ready(self) -> bool:
        """Whether the issuer's keys are at hand (fetching them if none are yet)."""
        if not self._keys:
            async with self._lock:
                if not self._keys:
                    await self._refresh()
        return bool(self._keys)


def require(principal: Principal, action: Action) -> None:
    """``Forbidden`` unless the token's roles or scopes open ``action``."""
    if not may(principal, action):
        raise Forbidden


def require_team(principal: Principal, team: str | None) -> None:
    """``Forbidden`` unless a patient of ``team`` (``None``: unknown) is the caller's."""
    if not may_see_team(principal, team):
        raise Forbidden
