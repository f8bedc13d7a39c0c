from __future__ import annotations

import datetime as dt

from pydantic import Field, SecretStr

from shared.settings import CommonSettings


class NotifierSettings(CommonSettings):
    port: int = Field(default=8082, validation_alias="NOTIFIER_PORT")
    twilio_account_sid: str = Field(
        default="AC00000000000000000000000000000000", validation_alias="TWILIO_ACCOUNT_SID"
    )
    twilio_auth_token: SecretStr = Field(
        default=SecretStr("sandbox-auth-token"), validation_alias="TWILIO_AUTH_TOKEN"
    )
    twilio_from: str | None = Field(default="+15005550006", validation_alias="TWILIO_FROM")
    twilio_messaging_service_sid: str | None = Field(
        default=None, validation_alias="TWILIO_MESSAGING_SERVICE_SID"
    )
    #: Where the Twilio SDK's requests go; empty means Twilio itself.
    twilio_api_base_url: str = Field(
        default="http://127.0.0.1:8090", validation_alias="TWILIO_API_BASE_URL"
    )
    clinic_name: str = Field(default="the MVD clinic", validation_alias="CLINIC_NAME")
    dispatch_interval: dt.timedelta = dt.timedelta(milliseconds=250)
    max_attempts: int = Field(default=5, validation_alias="NOTIFIER_MAX_ATTEMPTS")
