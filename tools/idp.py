"""Access tokens from the local Keycloak (``make up``), for scripts and tests.

People: the password grant through the public client ``hfs-cli`` (development only), with
the demo users of ``.run/demo-users.json``. Systems: client credentials, with the secrets
``make up`` generated into ``.run/keycloak/clients.json``.

    python -m tools.idp ana.clinician        # prints an access token
    python -m tools.idp --client hfs-reader  # a client-credentials token
"""

from __future__ import annotations

import argparse
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / ".run"


def issuer() -> str:
    return os.environ.get(
        "OIDC_ISSUER", f"http://127.0.0.1:{os.environ.get('KEYCLOAK_PORT', 8180)}/realms/hfs"
    )


def token_endpoint() -> str:
    return issuer() + "/protocol/openid-connect/token"


def demo_users() -> list[dict[str, Any]]:
    path = RUN / "demo-users.json"
    if not path.exists():
        raise SystemExit("no .run/demo-users.json: start the stack with `make up`")
    users: list[dict[str, Any]] = json.loads(path.read_text())
    return users


def client_secret(client_id: str) -> str:
    """A client's generated secret (the tests' clients, ``hfs-test-*``, share one)."""
    doc = json.loads((RUN / "keycloak" / "clients.json").read_text())
    key = "hfs-test" if client_id.startswith("hfs-test-") else client_id
    return str(doc["clients"][key]["client_secret"])


def admin_password() -> str:
    return (RUN / "keycloak" / "admin-password").read_text().strip()


def _token(form: dict[str, str], auth: tuple[str, str] | None = None) -> str:
    r = httpx.post(token_endpoint(), data=form, auth=auth or httpx.USE_CLIENT_DEFAULT, timeout=30)
    if r.status_code != 200:
        raise PermissionError(f"token request refused: {r.status_code} {r.text[:200]}")
    return str(r.json()["access_token"])


def password_token(username: str, password: str, client_id: str = "hfs-cli") -> str:
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "username": username,
        "password": password,
        "scope": "openid",
    }
    return _token(form)


def person_token(username: str) -> str:
    """A fresh access token for a demo user."""
    user = next((u for u in demo_users() if u["username"] == username), None)
    if user is None:
        raise SystemExit(f"no demo user {username!r} in .run/demo-users.json")
    return password_token(username, str(user["password"]))


def client_token(client_id: str, secret: str | None = None) -> str:
    """A fresh client-credentials access token."""
    return _token(
        {"grant_type": "client_credentials"}, auth=(client_id, secret or client_secret(client_id))
    )


@cache
def cached_person_token(username: str) -> str:
    """One token per user per process (tokens live 5 minutes: enough for a test session)."""
    return person_token(username)


@cache
def cached_client_token(client_id: str) -> str:
    return client_token(client_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("username", nargs="?", help="a demo user (see .run/demo-users.json)")
    parser.add_argument("--client", help="a client id: client-credentials grant instead")
    args = parser.parse_args()
    if args.client:
        print(client_token(args.client))
    elif args.username:
        print(person_token(args.username))
    else:
        parser.error("name a demo user or --client")


if __name__ == "__main__":
    main()
