from __future__ import annotations

import datetime as dt

from pydantic import Field, SecretStr

from shared.settings import DEV_MASTER_KEY, CommonSettings


class IngestSettings(CommonSettings):
    port: int = Field(default=8080, validation_alias="INGEST_PORT")
    twilio_auth_token: SecretStr = Field(
        default=SecretStr("sandbox-auth-token"), validation_alias="TWILIO_AUTH_TOKEN"
    )
    #: The URL Twilio is configured with (scheme, host, port), as seen from outside: the
    #: signature covers it, so it must be this and not the URL the request arrived on when
    #: ingest runs behind a proxy.
    public_base_url: str = Field(
        default="http://127.0.0.1:8080", validation_alias="PUBLIC_BASE_URL"
    )
    clinic_name: str = Field(default="the MVD clinic", validation_alias="CLINIC_NAME")
    #: Webhooks naming another account, or texts to another number, are refused (403).
    twilio_account_sid: str = Field(
        default="AC00000000000000000000000000000000", validation_alias="TWILIO_ACCOUNT_SID"
    )
    twilio_from: str = Field(default="+15005550006", validation_alias="TWILIO_FROM")
    #: More numbers of this service (comma-separated), e.g. those of a Messaging Service.
    twilio_numbers: str = Field(default="", validation_alias="TWILIO_INBOUND_NUMBERS")
    #: A webhook's events are stored before it is answered; it then waits this long at
    #: most for the outbox relay to have them in Kafka (Twilio waits 15 s for an answer).
    webhook_flush_wait_s: float = Field(
        default=2.0, ge=0, le=10, validation_alias="WEBHOOK_FLUSH_WAIT_S"
    )

    #: Wraps every patient's data key (base64 of 32 bytes; ``make up`` generates one).
    master_key: SecretStr = Field(default=SecretStr(DEV_MASTER_KEY), validation_alias="MASTER_KEY")
    #: OAuth2 clients (token ``azp``) that may fetch patients' data keys: the services.
    key_clients: str = Field(
        default="hfs-assessor,hfs-notifier,hfs-console-service", validation_alias="KEY_CLIENTS"
    )
    #: A patient whose monitoring completed is erased this many days later (7 years).
    retention_days_after_completion: int = Field(
        default=2555, ge=1, validation_alias="RETENTION_DAYS_AFTER_COMPLETION"
    )

    #: How often the retention sweep looks for patients due (seconds).
    retention_sweep_s: float = Field(default=5.0, gt=0, validation_alias="RETENTION_SWEEP_S")
    #: The stores that must report before an erasure is ``done``.
    erasure_stores: str = Field(
        default="ingest,assessor,notifier,provider,console", validation_alias="ERASURE_STORES"
    )

    @property
    def erasure_store_names(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.erasure_stores.split(",") if s.strip())

    @property
    def key_client_ids(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.key_clients.split(",") if c.strip())

    @property
    def our_numbers(self) -> frozenset[str]:
        extra = (n.strip() for n in self.twilio_numbers.split(","))
        return frozenset(n for n in (self.twilio_from, *extra) if n)

    #: PostgreSQL connections: an enrollment or a keyed report holds one until the broker
    #: has acknowledged its event (the registry transaction commits after the ack), so this
    #: bounds those requests in flight (wrk, 64 clients, when every report held one: 988
    #: requests/s with 10, 1,305 with 32).
    db_pool_size: int = Field(default=32, ge=2, le=200, validation_alias="INGEST_DB_POOL_SIZE")
    #: With the wall clock, how often to publish the time to clock.v1 (0: never).
    tick_interval_s: float = Field(default=60.0, ge=0, validation_alias="CLOCK_TICK_SECONDS")
    #: How far ahead of the clock a report's ``occurred_at`` may be (device clock skew).
    max_future_skew: dt.timedelta = dt.timedelta(minutes=10)
    #: How old a report's ``occurred_at`` may be (monitoring lasts a year after surgery).
    max_report_age: dt.timedelta = dt.timedelta(days=2 * 365)
    #: The window for ``surgery_date`` around the clock's date: beyond it is a typo.
    surgery_past: dt.timedelta = dt.timedelta(days=2 * 365)
    surgery_future: dt.timedelta = dt.timedelta(days=365)
