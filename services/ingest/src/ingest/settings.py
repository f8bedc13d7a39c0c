from __future__ import annotations

import datetime as dt

from pydantic import Field, SecretStr

from shared.settings import CommonSettings


class IngestSettings(CommonSettings):
    port: int = Field(default=8080, validation_alias="INGEST_PORT")
    twilio_auth_token: SecretStr = Field(
        default=SecretStr("sandbox-auth-token"), validation_alias="TWILIO_AUTH_TOKEN"
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8080", validation_alias="PUBLIC_BASE_URL"
    )
    #: How far ahead of the clock a report's ``occurred_at`` may be (device clock skew).
    max_future_skew: dt.timedelta = dt.timedelta(minutes=10)
