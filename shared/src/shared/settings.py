"""Settings common to every service, read from the environment (names as in the contract)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.logs import DEV_LOG_REF_KEY

DEV_API_TOKEN = "dev-token-change-me"  # noqa: S105 - the known development value, refused in production


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    kafka_bootstrap: str = Field(default="127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP")
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://recovery:recovery@127.0.0.1:55432/recovery"),
        validation_alias="DATABASE_URL",
    )
    api_token: SecretStr = Field(default=SecretStr(DEV_API_TOKEN), validation_alias="API_TOKEN")
    simulated_clock: bool = Field(default=False, validation_alias="SIMULATED_CLOCK")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    bind_host: str = Field(default="127.0.0.1", validation_alias="BIND_HOST")
    #: The key of the patient references in log lines (``shared.logs.patient_ref``).
    log_ref_key: SecretStr = Field(
        default=SecretStr(DEV_LOG_REF_KEY), validation_alias="LOG_REF_KEY"
    )

    @model_validator(mode="after")
    def _refuse_dev_token_off_loopback(self) -> CommonSettings:
        """A development token is only acceptable when the service listens on loopback."""
        token = self.api_token.get_secret_value()
        if len(token) < 16:
            raise ValueError("API_TOKEN must be at least 16 characters")
        if token == DEV_API_TOKEN and not _is_loopback(self.bind_host):
            raise ValueError("refusing the development API_TOKEN on a non-loopback BIND_HOST")
        if len(self.log_ref_key.get_secret_value()) < 16:
            raise ValueError("LOG_REF_KEY must be at least 16 characters")
        return self


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
