"""OIDC sign-in for the console: authorization code with PKCE (S256), state and nonce;
server-side sessions; refresh; RP-initiated logout.

The protocol's client side is authlib's (``AsyncOAuth2Client``: the authorization URL with
its S256 challenge, the token and refresh requests with client authentication, the token
endpoint's errors). Tokens are verified with ``shared.auth.Authenticator`` (the issuer's
JWKS, issuer, audience, expiry, a pinned algorithm), the same code the APIs verify their
bearer tokens with: the ID token with this client as its audience plus its nonce, the access
token with the APIs' audience. Roles and teams come from the verified access token, read by
the APIs' rules (``principal_from_claims``), so the console never grants what the APIs
would refuse.

State lives server-side in the console's schema: a pending sign-in (hash of the state → the
PKCE verifier, the nonce, where to go next, and a hash of a browser cookie it is bound to,
so a sign-in started in one browser cannot be finished in another) and a session (hash of
the cookie's random value → the user's tokens). The browser holds only random values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from console.principal import Principal, csrf_ok
from console.settings import ConsoleSettings
from console.web import PageError, local_path, utcnow
from shared.auth import Authenticator, Unauthorized, principal_from_claims

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 package and warns when it falls back to httpx, the
    # HTTP client every other part of this project uses; the fallback is supported.
    warnings.simplefilter("ignore")
    from authlib.common.errors import AuthlibBaseError  # type: ignore[import-untyped]
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
    )

log = logging.getLogger(__name__)

LOGIN_PATH = "/auth/login"
CALLBACK_PATH = "/auth/callback"
SIGNED_OUT_PATH = "/signed-out"
#: How long a started sign-in may take at the IdP's login page.
SIGN_IN_TTL = dt.timedelta(minutes=10)
#: An access token this close to its expiry is refreshed before it is forwarded.
REFRESH_MARGIN = dt.timedelta(seconds=20)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class SignInFailed(PageError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "Sign-in failed", message + " Sign in again.")


class OidcSignIn:
    """The console's ``Authenticate`` and its sign-in routes (``install``)."""

    def __init__(
        self, settings: ConsoleSettings, *, wall: Callable[[], dt.datetime] = utcnow
    ) -> None:
        self.settings = settings
        self.wall = wall
        self.client_id = settings.oidc_client_id
        self.public_url = settings.public_base_url().rstrip("/")
        self.redirect_uri = self.public_url + CALLBACK_PATH
        oidc = settings.oidc()
        self.access = Authenticator(oidc)
        self.ids = Authenticator(replace(oidc, audience=self.client_id))
        self.secure = settings.cookie_secure
        #: ``__Host-`` makes the browser insist on Secure, path / and no Domain.
        self.cookie = "__Host-hfs-console" if self.secure else "hfs-console"
        self.browser_cookie = "hfs-console-signin"
        self._metadata: dict[str, Any] | None = None

    # --- the identity provider ---------------------------------------------------------

    async def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (fetched once it answers)."""
        if self._metadata is None:
            url = self.settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=10) as http:
                    r = await http.get(url)
                    r.raise_for_status()
                    doc = r.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("identity provider unreachable: %s", type(exc).__name__)
                raise PageError(503, "Sign-in unavailable", "The identity provider does not "
                                "answer. Try again in a moment.") from None  # fmt: skip
            if doc.get("issuer") != self.settings.oidc_issuer:
                raise PageError(503, "Sign-in unavailable", "The identity provider's issuer "
                                "does not match the configured one.")  # fmt: skip
            self._metadata = doc
        return self._metadata

    def _oauth(self) -> Any:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self.settings.oidc_client_secret.get_secret_value(),
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
            redirect_uri=self.redirect_uri,
            scope="openid",
            code_challenge_method="S256",
            timeout=10,
        )

    # --- who is signed in --------------------------------------------------------------

    async def authenticate(self, request: Request) -> Principal | None:
        raw = request.cookies.get(self.cookie)
        if not raw:
            return None
        pool: asyncpg.Pool = request.app.state.pool
        session = _hash(raw)
        now = self.wall()
        row = await pool.fetchrow(
            "SELECT access_token, access_expires_at FROM console.sessions"
            " WHERE session_hash = $1 AND expires_at > $2",
            session,
            now,
        )
        if row is None:
            return None
        token: str | None = row["access_token"]
        expires = row["access_expires_at"]
        if expires is None or expires <= now + REFRESH_MARGIN:
            token = await self._refresh(pool, session)
            if token is None:
                return None
        assert token is not None
        try:
            claims = await self.access.verify(token)
        except Unauthorized:
            await pool.execute("DELETE FROM console.sessions WHERE session_hash = $1", session)
            return None
        who = principal_from_claims(claims, self.access.config)
        return Principal(
            sub=who.sub,
            name=who.name or who.sub,
            roles=who.roles,
            # A person's token names their teams; "every team" is for integrations only.
            teams=tuple(sorted(who.teams or ())),
            token=token,
            session_id=session,
        )

    async def _refresh(self, pool: asyncpg.Pool, session: str) -> str | None:
        """A fresh access token for the session, or ``None`` (session ended: sign in
        again). The row is locked meanwhile: the IdP rotates refresh tokens, so two pages
        refreshing at once would otherwise end the session."""
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT access_token, access_expires_at, refresh_token FROM console.sessions"
                " WHERE session_hash = $1 FOR UPDATE",
                session,
            )
            if row is None:
                return None
            now = self.wall()
            if row["access_expires_at"] is not None and row["access_expires_at"] > (
                now + REFRESH_MARGIN
            ):
                return str(row["access_token"])  # another request refreshed it meanwhile
            token: dict[str, Any] | None = None
            if row["refresh_token"]:
                try:
                    meta = await self.metadata()
                    async with self._oauth() as oauth:
                        token = await oauth.refresh_token(
                            meta["token_endpoint"], refresh_token=row["refresh_token"]
                        )
                except (AuthlibBaseError, httpx.HTTPError, PageError, ValueError) as exc:
                    log.info("session refresh refused: %s", type(exc).__name__)
                    token = None
            access = token.get("access_token") if token else None
            claims: dict[str, Any] | None = None
            if isinstance(access, str):
                try:
                    claims = await self.access.verify(access)
                except Unauthorized:
                    claims = None
            if token is None or claims is None:
                await conn.execute("DELETE FROM console.sessions WHERE session_hash = $1", session)
                return None
            await conn.execute(
                "UPDATE console.sessions SET access_token = $2, access_expires_at = $3,"
                " refresh_token = coalesce($4, refresh_token), id_token = coalesce($5, id_token)"
                " WHERE session_hash = $1",
                session,
                access,
                dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC),
                token.get("refresh_token"),
                token.get("id_token"),
            )
            return str(access)

    # --- routes ------------------------------------------------------------------------

    def _set_cookie(self, response: Response, name: str, value: str, *, max_age: int,
                    path: str = "/") -> None:  # fmt: skip
        response.set_cookie(name, value, max_age=max_age, path=path, secure=self.secure,
                            httponly=True, samesite="lax")  # fmt: skip

    def install(self, app: FastAPI) -> None:
        app.state.login_path = LOGIN_PATH

        @app.get(LOGIN_PATH)
        async def login(request: Request, next: str = "/") -> Response:
            meta = await self.metadata()
            pool: asyncpg.Pool = request.app.state.pool
            now = self.wall()
            browser = request.cookies.get(self.browser_cookie) or secrets.token_urlsafe(32)
            state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            verifier = secrets.token_urlsafe(64)  # 86 characters: RFC 7636 allows 43-128
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("DELETE FROM console.sign_ins WHERE expires_at <= $1", now)
                await conn.execute("DELETE FROM console.sessions WHERE expires_at <= $1", now)
                await conn.execute(
                    "INSERT INTO console.sign_ins (state_hash, browser_hash, nonce,"
                    " code_verifier, next_path, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    _hash(state), _hash(browser), nonce, verifier,
                    local_path(next), now + SIGN_IN_TTL,
                )  # fmt: skip
            async with self._oauth() as oauth:
                url, _ = oauth.create_authorization_url(
                    meta["authorization_endpoint"], state=state, code_verifier=verifier,
                    nonce=nonce,
                )  # fmt: skip
            response = RedirectResponse(url, status_code=303)
            self._set_cookie(response, self.browser_cookie, browser,
                             max_age=int(SIGN_IN_TTL.total_seconds()), path="/auth")  # fmt: skip
            return response

        @app.get(CALLBACK_PATH)
        async def callback(
            request: Request, code: str = "", state: str = "", error: str = ""
        ) -> Response:
            browser = request.cookies.get(self.browser_cookie)
            if not state or not browser:
                raise SignInFailed("This sign-in was not started in this browser.")
            pool: asyncpg.Pool = request.app.state.pool
            now = self.wall()
            # Used up by its own browser's first try; another browser's try leaves it be.
            pending = await pool.fetchrow(
                "DELETE FROM console.sign_ins WHERE state_hash = $1 AND browser_hash = $2"
                " RETURNING *",
                _hash(state),
                _hash(browser),
            )
            if pending is None or pending["expires_at"] <= now:
                raise SignInFailed("This sign-in has expired or was not started here.")
            if error or not code:
                # The IdP's error code (e.g. access_denied) says nothing about a patient.
                raise SignInFailed(f"The identity provider refused it ({error[:40] or 'no code'}).")
            meta = await self.metadata()
            try:
                async with self._oauth() as oauth:
                    token: dict[str, Any] = await oauth.fetch_token(
                        meta["token_endpoint"], grant_type="authorization_code", code=code,
                        code_verifier=pending["code_verifier"], redirect_uri=self.redirect_uri,
                    )  # fmt: skip
            except (AuthlibBaseError, httpx.HTTPError, ValueError) as exc:
                log.warning("code exchange failed: %s", type(exc).__name__)
                raise SignInFailed("The identity provider did not accept the code.") from None
            id_token, access = token.get("id_token"), token.get("access_token")
            if not isinstance(id_token, str) or not isinstance(access, str):
                raise SignInFailed("The identity provider sent no ID token.")
            try:
                id_claims = await self.ids.verify(id_token)
                access_claims = await self.access.verify(access)
            except Unauthorized as exc:
                log.warning("token from the IdP refused: %s", exc.message)
                raise SignInFailed("The identity provider's token is not valid.") from None
            if not hmac.compare_digest(str(id_claims.get("nonce", "")), pending["nonce"]):
                raise SignInFailed("The ID token does not answer this sign-in (nonce).")
            if id_claims.get("azp", self.client_id) != self.client_id:
                raise SignInFailed("The ID token was issued to another client.")
            if access_claims.get("sub") != id_claims.get("sub"):
                raise SignInFailed("The tokens name different users.")
            raw = secrets.token_urlsafe(32)
            lifetime = dt.timedelta(hours=self.settings.session_hours)
            old = request.cookies.get(self.cookie)
            async with pool.acquire() as conn, conn.transaction():
                if old:
                    await conn.execute(
                        "DELETE FROM console.sessions WHERE session_hash = $1", _hash(old)
                    )
                await conn.execute(
                    "INSERT INTO console.sessions (session_hash, access_token, refresh_token,"
                    " id_token, expires_at, created_at, access_expires_at, sub)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    _hash(raw), access, token.get("refresh_token"), id_token, now + lifetime,
                    now, dt.datetime.fromtimestamp(int(access_claims["exp"]), dt.UTC),
                    str(id_claims["sub"]),
                )  # fmt: skip
            response = RedirectResponse(local_path(pending["next_path"]), status_code=303)
            self._set_cookie(response, self.cookie, raw, max_age=int(lifetime.total_seconds()))
            response.delete_cookie(self.browser_cookie, path="/auth", secure=self.secure,
                                   httponly=True, samesite="lax")  # fmt: skip
            return response

        @app.post("/logout")
        async def logout(request: Request) -> Response:
            """Ends the console's session and the IdP's (RP-initiated logout). A form post
            with the CSRF token: a link elsewhere cannot sign the user out."""
            principal = await self.authenticate(request)
            target = self.public_url + SIGNED_OUT_PATH
            if principal is not None:
                form = await request.form()
                given = form.get("csrf")
                secret = self.settings.secret_key.get_secret_value().encode()
                if not csrf_ok(secret, principal, given if isinstance(given, str) else ""):
                    raise PageError(403, "Form expired", "The form's security token is not "
                                    "valid. Reload the page and try again.")  # fmt: skip
                pool: asyncpg.Pool = request.app.state.pool
                id_token = await pool.fetchval(
                    "DELETE FROM console.sessions WHERE session_hash = $1 RETURNING id_token",
                    principal.session_id,
                )
                meta = await self.metadata()
                end = meta.get("end_session_endpoint")
                if isinstance(end, str):
                    query = {"post_logout_redirect_uri": target, "client_id": self.client_id}
                    if id_token:
                        query["id_token_hint"] = id_token
                    target = end + ("&" if "?" in end else "?") + urlencode(query)
            response = RedirectResponse(target, status_code=303)
            response.delete_cookie(self.cookie, path="/", secure=self.secure, httponly=True,
                                   samesite="lax")  # fmt: skip
            return response
