from __future__ import annotations

import datetime as dt

from pydantic import Field, SecretStr

from notifier.policy import Policy
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
    #: Per-request timeout of the Twilio SDK (seconds).
    twilio_timeout_s: float = Field(default=10.0, gt=0, validation_alias="TWILIO_TIMEOUT_S")
    #: Ingest's public address: status callbacks go to ``{PUBLIC_BASE_URL}/v1/twilio/status``
    #: (empty: no status callbacks).
    public_base_url: str = Field(
        default="http://127.0.0.1:8080", validation_alias="PUBLIC_BASE_URL"
    )
    clinic_name: str = Field(default="the MVD clinic", validation_alias="CLINIC_NAME")
    dispatch_interval: dt.timedelta = dt.timedelta(milliseconds=250)
    #: With back-off from 2 s doubling (full jitter), 8 attempts span about two minutes: a
    #: burst of 429s or 5xx from the provider lasting half a minute loses nothing.
    max_attempts: int = Field(default=8, ge=1, validation_alias="NOTIFIER_MAX_ATTEMPTS")
    #: A row ``sending`` for longer than this is looked up at the provider (seconds).
    sending_lease_s: float = Field(default=120.0, gt=0, validation_alias="NOTIFIER_SENDING_LEASE_S")
    #: After a timeout, dropped connection or 5xx, a patient text is looked up at the
    #: provider no sooner than this (seconds) before it is sent again.
    verify_delay_s: float = Field(default=30.0, ge=0, validation_alias="NOTIFIER_VERIFY_DELAY_S")
    #: Unacknowledged urgent pages go to the backup after this many minutes …
    page_ack_minutes: float = Field(default=15.0, gt=0, validation_alias="PAGE_ACK_MINUTES")
    #: … then repeat this often, this many times.
    page_repeat_minutes: float = Field(default=15.0, gt=0, validation_alias="PAGE_REPEAT_MINUTES")
    page_repeats: int = Field(default=3, ge=0, validation_alias="PAGE_REPEATS")
    #: Call the on-call (step 1) and the backup (step 2) of an unacknowledged page through
    #: Twilio's Voice API, besides texting them.
    page_voice_calls: bool = Field(default=True, validation_alias="PAGE_VOICE_CALLS")
    #: A background loop without a heartbeat for this long makes /healthz answer 503.
    loop_stale_s: float = Field(default=120.0, gt=0, validation_alias="LOOP_STALE_SECONDS")

    @property
    def status_callback_url(self) -> str | None:
        base = self.public_base_url.strip().rstrip("/")
        return f"{base}/v1/twilio/status" if base else None

    def policy(self) -> Policy:
        return Policy(
            lease=dt.timedelta(seconds=self.sending_lease_s),
            verify_delay=dt.timedelta(seconds=self.verify_delay_s),
            ack_timeout=dt.timedelta(minutes=self.page_ack_minutes),
            escalation_interval=dt.timedelta(minutes=self.page_repeat_minutes),
            escalation_repeats=self.page_repeats,
        )
