"""Settings common to every service, read from the environment (names as in the contract)."""

from __future__ import annotations

import ipaddress
import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth import OidcConfig
from shared.crypto import RemoteKeyring, TokenSource, client_credentials, static_token
from shared.logs import DEV_LOG_REF_KEY
from shared.production import (  # the development defaults production refuses
    DEV_AUDIT_PASSWORD,
    DEV_DATABASE_PASSWORD,
    DEV_TWILIO_AUTH_TOKEN,
    refusals,
)

DEV_API_TOKEN = "dev-token-change-me"  # noqa: S105 - the known development value, refused in production
__all__ = ["DEV_AUDIT_PASSWORD", "DEV_DATABASE_PASSWORD", "DEV_TWILIO_AUTH_TOKEN"]
#: The development master key (base64 of 32 bytes), for unit tests and runs without
#: ``make up`` (which generates one into ``.run/master-key``); production refuses it
#: (``shared.production``).
DEV_MASTER_KEY = "ZGV2LW1hc3Rlci1rZXktY2hhbmdlLW1lLTMyYnl0ZXM="


class CommonSettings(BaseSettings):
    # hide_input_in_errors: a refusal names the setting; pydantic would otherwise append
    # the input (database URLs with their passwords, tokens) to the message.
    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    #: Unset: the local broker on ``KAFKA_PORT`` (9092).
    kafka_bootstrap: str = Field(
        default_factory=lambda: f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}",
        validation_alias="KAFKA_BOOTSTRAP",
    )
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://recovery:recovery@127.0.0.1:55432/recovery"),
        validation_alias="DATABASE_URL",
    )
    #: ``development`` or ``production``: production refuses every development secret.
    environment: Literal["development", "production"] = Field(
        default="development", validation_alias="ENVIRONMENT"
    )
    #: The development credential (``.run/api-token``): every scope, every team; accepted
    #: only in development on a loopback BIND_HOST. Unset: only the IdP's tokens.
    api_token: SecretStr | None = Field(default=None, validation_alias="API_TOKEN")
    simulated_clock: bool = Field(default=False, validation_alias="SIMULATED_CLOCK")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    bind_host: str = Field(default="127.0.0.1", validation_alias="BIND_HOST")
    #: The key of the patient references in log lines (``shared.logs.patient_ref``).
    log_ref_key: SecretStr = Field(
        default=SecretStr(DEV_LOG_REF_KEY), validation_alias="LOG_REF_KEY"
    )

    # The identity provider (Keycloak in development; the hospital's own in production).
    oidc_issuer: str = Field(
        default="http://127.0.0.1:8180/realms/hfs", validation_alias="OIDC_ISSUER"
    )
    oidc_audience: str = Field(default="hfs-api", validation_alias="OIDC_AUDIENCE")
    #: Unset: the ``jwks_uri`` of the issuer's ``/.well-known/openid-configuration``.
    oidc_jwks_url: str | None = Field(default=None, validation_alias="OIDC_JWKS_URL")
    #: Claim names (a dotted path reaches into objects, e.g. ``realm_access.roles``).
    oidc_roles_claim: str = Field(default="roles", validation_alias="OIDC_ROLES_CLAIM")
    oidc_teams_claim: str = Field(default="teams", validation_alias="OIDC_TEAMS_CLAIM")
    oidc_scope_claim: str = Field(default="scope", validation_alias="OIDC_SCOPE_CLAIM")
    oidc_leeway_s: float = Field(default=30.0, ge=0, le=300, validation_alias="OIDC_LEEWAY_S")

    #: The audit trail's writing role (it may only execute audit.append); unset: the
    #: service's own DATABASE_URL (development). Required in production.
    audit_database_url: SecretStr | None = Field(
        default=None, validation_alias="AUDIT_DATABASE_URL"
    )
    audit_retention_days: int = Field(
        default=6 * 366, ge=1, validation_alias="AUDIT_RETENTION_DAYS"
    )

    # Patients' data keys (shared.crypto): ingest holds them; the others ask it.
    #: Ingest's address for its internal key endpoint.
    key_service_url: str = Field(
        default="http://127.0.0.1:8080", validation_alias="KEY_SERVICE_URL"
    )
    #: The service's own OAuth2 client (client credentials) for the key endpoint; unset in
    #: development: the development credential (API_TOKEN).
    service_client_id: str | None = Field(default=None, validation_alias="SERVICE_CLIENT_ID")
    service_client_secret: SecretStr | None = Field(
        default=None, validation_alias="SERVICE_CLIENT_SECRET"
    )
    #: Unset: the issuer's ``/protocol/openid-connect/token`` (Keycloak's layout).
    oidc_token_url: str | None = Field(default=None, validation_alias="OIDC_TOKEN_URL")

    @model_validator(mode="after")
    def _refuse_development_secrets(self) -> CommonSettings:
        """The development credential only on loopback in development; in production, no
        development secret at all (each named, so the operator knows what to set)."""
        token = self.api_token.get_secret_value() if self.api_token else None
        if token is not None and len(token) < 16:
            raise ValueError("API_TOKEN must be at least 16 characters")
        if self.environment == "production":
            # Every check of shared/production.py (each names its setting, never a value).
            refused = refusals(self)
            if refused:
                raise ValueError(
                    "ENVIRONMENT=production refuses development secrets: " + "; ".join(refused)
                )
        elif token is not None and not _is_loopback(self.bind_host):
            raise ValueError(
                "refusing the development API_TOKEN on a non-loopback BIND_HOST "
                "(it is accepted only while the service listens on loopback)"
            )
        if len(self.log_ref_key.get_secret_value()) < 16:
            raise ValueError("LOG_REF_KEY must be at least 16 characters")
        return self

    def audit_url(self) -> str:
        url = self.audit_database_url or self.database_url
        return url.get_secret_value()

    def key_token(self) -> TokenSource:
        """The bearer token this service shows ingest's key endpoint."""
        if self.service_client_id and self.service_client_secret:
            url = self.oidc_token_url or (
                self.oidc_issuer.rstrip("/") + "/protocol/openid-connect/token"
            )
            return client_credentials(
                url, self.service_client_id, self.service_client_secret.get_secret_value()
            )
        if self.api_token is not None:
            return static_token(self.api_token.get_secret_value())

        async def unconfigured() -> str:
            raise RuntimeError(
                "no credential for ingest's key endpoint: set SERVICE_CLIENT_ID and "
                "SERVICE_CLIENT_SECRET (or, in development, API_TOKEN)"
            )

        return unconfigured

    def keyring(self) -> RemoteKeyring:
        return RemoteKeyring(self.key_service_url, self.key_token())

    def oidc(self) -> OidcConfig:
        return OidcConfig(
            issuer=self.oidc_issuer,
            audience=self.oidc_audience,
            jwks_url=self.oidc_jwks_url,
            roles_claim=self.oidc_roles_claim,
            teams_claim=self.oidc_teams_claim,
            scope_claim=self.oidc_scope_claim,
            leeway_s=self.oidc_leeway_s,
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """A connection URL without its password, for log lines."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"
