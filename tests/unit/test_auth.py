"""shared.auth without an identity provider: the claims → principal mapping, the contract's
role / scope / team table, and the token checks against a JWKS on disk (the real Keycloak
is in tests/e2e/test_identity.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from shared.auth import (
    DEVELOPMENT_PRINCIPAL,
    Authenticator,
    OidcConfig,
    Principal,
    Unauthorized,
    may,
    may_see_team,
    principal_from_claims,
)

ISSUER = "https://idp.example.org/realms/hfs"
CONFIG = OidcConfig(issuer=ISSUER, audience="hfs-api")


def principal(roles: set[str] = frozenset(), scopes: set[str] = frozenset(), teams: Any = None):  # type: ignore[assignment]
    return Principal("s", None, None, frozenset(roles), frozenset(scopes), teams)


def test_an_absent_teams_claim_means_no_team_and_a_star_every_team() -> None:
    base = {"sub": "u1", "roles": ["clinician"]}
    assert principal_from_claims(base, CONFIG).teams == frozenset()
    assert principal_from_claims({**base, "teams": "*"}, CONFIG).teams is None
    assert principal_from_claims({**base, "teams": ["team-a"]}, CONFIG).teams == {"team-a"}


def test_claim_names_are_configurable_and_may_be_paths() -> None:
    config = OidcConfig(
        issuer=ISSUER, audience="hfs-api", roles_claim="realm_access.roles", teams_claim="groups"
    )
    claims = {"sub": "u1", "realm_access": {"roles": ["admin", "offline_access"]}, "groups": ["x"]}
    p = principal_from_claims(claims, config)
    assert p.roles == {"admin"}  # roles outside the contract's four are ignored
    assert p.teams == {"x"}


def test_scopes_come_from_the_space_separated_scope_claim() -> None:
    p = principal_from_claims({"sub": "c", "scope": "openid patients:read email"}, CONFIG)
    assert p.scopes == {"patients:read"}


@pytest.mark.parametrize(
    ("who", "action", "allowed"),
    [
        (principal({"clinician"}), "patient.read", True),
        (principal({"clinician"}), "page.ack", True),
        (principal({"clinician"}), "audit.read", False),
        (principal({"operator"}), "patient.read", False),
        (principal({"operator"}), "clock", True),
        (principal({"admin"}), "audit.read", True),
        (principal({"admin"}), "patient.read", False),
        (principal(scopes={"patients:read"}), "patient.read", True),
        (principal(scopes={"patients:read"}), "patient.write", False),
        (principal(scopes={"reports:write"}), "report.write", True),
        (principal(scopes={"patients:write"}), "page.ack", False),
        (DEVELOPMENT_PRINCIPAL, "audit.read", True),
    ],
)
def test_the_contracts_table(who: Principal, action: Any, allowed: bool) -> None:
    assert may(who, action) is allowed


def test_teams_bound_patients_and_an_unknown_patient_is_only_for_every_team() -> None:
    a = principal({"clinician"}, teams=frozenset({"team-a"}))
    assert may_see_team(a, "team-a")
    assert not may_see_team(a, "team-b")
    assert not may_see_team(a, None)
    assert may_see_team(principal(scopes={"patients:read"}, teams=None), None)


# --- tokens against a JWKS file --------------------------------------------------------


class Issuer:
    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "jwks.json"
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.rotate("k1")

    def rotate(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwks = {
            "keys": [
                {
                    **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())),
                    "kid": i,
                    "use": "sig",
                    "alg": "RS256",
                }
                for i, k in self.keys.items()
            ]
        }
        self.path.write_text(json.dumps(jwks))

    def token(self, kid: str = "k1", **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": "hfs-api",
            "sub": "u1",
            "iat": now,
            "exp": now + 300,
            "roles": ["clinician"],
            "teams": ["team-a"],
            **claims,
        }
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def authenticator(self, **overrides: Any) -> Authenticator:
        config = OidcConfig(
            issuer=ISSUER, audience="hfs-api", jwks_url=self.path.as_uri(), **overrides
        )
        return Authenticator(config, SecretStr("d" * 24))


@pytest.fixture
def idp(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path)


async def test_a_valid_token_is_its_principal(idp: Issuer) -> None:
    p = await idp.authenticator().authenticate(f"Bearer {idp.token(azp='hfs-cli', name='Ana')}")
    assert (p.sub, p.name, p.client, p.roles, p.teams) == (
        "u1",
        "Ana",
        "hfs-cli",
        {"clinician"},
        {"team-a"},
    )


async def test_expiry_allows_the_leeway_and_no_more(idp: Issuer) -> None:
    past = int(time.time()) - 20
    token = idp.token(exp=past, iat=past - 300)
    assert await idp.authenticator(leeway_s=30).authenticate(f"Bearer {token}")
    with pytest.raises(Unauthorized, match="expired"):
        await idp.authenticator(leeway_s=5).authenticate(f"Bearer {token}")


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "other-api"}, "audience"),
        ({"iss": "https://evil.example.org"}, "issuer"),
        ({"sub": None}, "claims"),
    ],
)
async def test_issuer_audience_and_required_claims(
    idp: Issuer, claims: dict[str, Any], message: str
) -> None:
    body = {k: v for k, v in claims.items() if v is not None}
    token = idp.token(**body)
    if claims.get("sub", "") is None:
        token = jwt.encode(
            {
                k: v
                for k, v in jwt.decode(token, options={"verify_signature": False}).items()
                if k != "sub"
            },
            idp.keys["k1"],
            algorithm="RS256",
            headers={"kid": "k1"},
        )
    with pytest.raises(Unauthorized, match=message):
        await idp.authenticator().authenticate(f"Bearer {token}")


async def test_a_rotated_key_is_fetched_on_its_unknown_kid(idp: Issuer) -> None:
    auth = idp.authenticator()
    assert await auth.authenticate(f"Bearer {idp.token()}")
    idp.rotate("k2")
    # The keys were fetched under 10 s ago: an unknown kid is refused rather than refetched
    # on every request; once the minimum interval has passed it is fetched.
    with pytest.raises(Unauthorized, match="unknown key"):
        await auth.authenticate(f"Bearer {idp.token('k2')}")
    auth._fetched_at -= 60
    assert (await auth.authenticate(f"Bearer {idp.token('k2')}")).sub == "u1"


async def test_algorithms_other_than_rs256_are_refused_before_any_key(idp: Issuer) -> None:
    claims = jwt.decode(idp.token(), options={"verify_signature": False})
    hs = jwt.encode(claims, "x" * 32, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(Unauthorized, match="algorithm"):
        await idp.authenticator().authenticate(f"Bearer {hs}")


async def test_the_development_credential_and_missing_tokens(idp: Issuer) -> None:
    auth = idp.authenticator()
    assert await auth.authenticate("Bearer " + "d" * 24) is DEVELOPMENT_PRINCIPAL
    with pytest.raises(Unauthorized) as missing:
        await auth.authenticate(None)
    assert missing.value.www_authenticate == 'Bearer realm="hfs"'
    with pytest.raises(Unauthorized) as wrong:
        await auth.authenticate("Bearer " + "e" * 24)
    assert 'error="invalid_token"' in wrong.value.www_authenticate
    without_dev = Authenticator(
        OidcConfig(issuer=ISSUER, audience="hfs-api", jwks_url=idp.path.as_uri())
    )
    with pytest.raises(Unauthorized):
        await without_dev.authenticate("Bearer " + "d" * 24)
