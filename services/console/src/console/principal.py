"""Who is signed in: the seam between the pages and the sign-in.

The pages only ever see a ``Principal``; how it was established (OIDC session, or a test
injecting one) is the ``Authenticate`` callable's business.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request


@dataclass(frozen=True)
class Principal:
    sub: str
    name: str
    roles: frozenset[str]
    teams: tuple[str, ...]
    #: The user's access token, forwarded to every service the console calls for them.
    token: str
    #: The browser session; CSRF tokens are bound to it.
    session_id: str

    @property
    def is_clinician(self) -> bool:
        return "clinician" in self.roles

    def may_see(self, team: str | None) -> bool:
        return self.is_clinician and team is not None and team in self.teams


Authenticate = Callable[[Request], Awaitable[Principal | None]]


async def nobody(_: Request) -> Principal | None:
    """No sign-in configured: nobody is signed in, and every page answers 401."""
    return None


def csrf_token(secret: bytes, principal: Principal) -> str:
    """A form's CSRF token: an HMAC of the session id (changes with every sign-in)."""
    return hmac.new(secret, f"csrf:{principal.session_id}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, principal: Principal, given: str) -> bool:
    return hmac.compare_digest(csrf_token(secret, principal), given or "")
