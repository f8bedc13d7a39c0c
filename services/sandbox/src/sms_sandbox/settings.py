"""Sandbox settings, read from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sms_sandbox.twilio_wire import DEFAULT_ACCOUNT_SID, DEFAULT_FROM

DEFAULT_AUTH_TOKEN = "sandbox-auth-token"  # noqa: S105 - the sandbox's published dev credential


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        hide_input_in_errors=True,
    )

    host: str = Field(default="127.0.0.1", validation_alias="SANDBOX_HOST")
    port: int = Field(default=8090, validation_alias="SANDBOX_PORT")
    account_sid: str = Field(default=DEFAULT_ACCOUNT_SID, validation_alias="TWILIO_ACCOUNT_SID")
    auth_token: SecretStr = Field(
        default=SecretStr(DEFAULT_AUTH_TOKEN), validation_alias="TWILIO_AUTH_TOKEN"
    )
    #: The sandbox's own service number: the default ``To`` of simulated inbound texts.
    from_number: str = Field(default=DEFAULT_FROM, validation_alias="TWILIO_FROM")
    #: Where status callbacks go when a message has no ``StatusCallback`` of its own.
    status_callback_url: str | None = Field(
        default=None, validation_alias="SANDBOX_STATUS_CALLBACK_URL"
    )
    #: The public base URL of ingest; inbound webhooks are signed against
    #: ``{public_base_url}/v1/twilio/inbound``, as Twilio signs the URL it was configured with.
    public_base_url: str = Field(
        default="http://127.0.0.1:8080", validation_alias="PUBLIC_BASE_URL"
    )
    #: Where inbound webhooks are actually POSTed (default: the signed URL itself).
    ingest_url: str | None = Field(default=None, validation_alias="INGEST_URL")
    #: Delay before each status step (queued -> sent -> delivered).
    callback_delay_ms: int = Field(default=100, ge=0, validation_alias="SANDBOX_CALLBACK_DELAY_MS")
    #: Attempts per status callback (the first try plus retries).
    callback_attempts: int = Field(default=3, ge=1, validation_alias="SANDBOX_CALLBACK_ATTEMPTS")
    #: Status callbacks in flight at once (the rest wait their turn).
    callback_concurrency: int = Field(
        default=16, ge=1, validation_alias="SANDBOX_CALLBACK_CONCURRENCY"
    )
    callback_timeout_s: float = Field(
        default=5.0, gt=0, validation_alias="SANDBOX_CALLBACK_TIMEOUT_S"
    )
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    #: The sandbox is a development stand-in for Twilio: ``production`` refuses to start.
    environment: Literal["development", "production"] = Field(
        default="development", validation_alias="ENVIRONMENT"
    )

    @model_validator(mode="after")
    def _never_in_production(self) -> SandboxSettings:
        if self.environment == "production":
            raise ValueError(
                "ENVIRONMENT=production: the SMS sandbox never runs in production "
                "(it accepts any message and delivers none); use the provider itself"
            )
        return self

    @property
    def inbound_signed_url(self) -> str:
        return self.public_base_url.rstrip("/") + "/v1/twilio/inbound"

    @property
    def inbound_post_url(self) -> str:
        return self.ingest_url or self.inbound_signed_url
