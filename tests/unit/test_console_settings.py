"""The console's settings: production refuses its development secrets and an insecure
session cookie, and names each."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from console.settings import DEV_CLIENT_SECRET, DEV_SECRET_KEY, ConsoleSettings

PRODUCTION: dict[str, Any] = {
    "ENVIRONMENT": "production",
    "DATABASE_URL": "postgresql://console:s3cret-pw@db.internal:5432/recovery",
    "AUDIT_DATABASE_URL": "postgresql://audit:an0ther-pw@db.internal:5432/recovery",
    "LOG_REF_KEY": "a-production-log-reference-key",
    "CONSOLE_SECRET_KEY": "a-production-console-session-key-0123",
    "CONSOLE_OIDC_CLIENT_SECRET": "the-idp-generated-client-secret",
    "CONSOLE_PUBLIC_URL": "https://console.hfs.example.org",
}


def settings(**env: Any) -> ConsoleSettings:
    return ConsoleSettings(**env)


def test_production_starts_with_its_own_secrets() -> None:
    s = settings(**PRODUCTION)
    assert s.cookie_secure is True
    assert s.public_base_url() == "https://console.hfs.example.org"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"CONSOLE_SECRET_KEY": DEV_SECRET_KEY}, "CONSOLE_SECRET_KEY"),
        ({"CONSOLE_OIDC_CLIENT_SECRET": DEV_CLIENT_SECRET}, "CONSOLE_OIDC_CLIENT_SECRET"),
        ({"CONSOLE_COOKIE_SECURE": "0"}, "CONSOLE_COOKIE_SECURE"),
        ({"CONSOLE_PUBLIC_URL": "http://console.hfs.example.org"}, "CONSOLE_PUBLIC_URL"),
    ],
)
def test_production_refuses_each_development_setting_by_name(
    override: dict[str, str], named: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**(PRODUCTION | override))
    message = str(caught.value)
    assert named in message
    others = {"CONSOLE_SECRET_KEY", "CONSOLE_OIDC_CLIENT_SECRET", "CONSOLE_COOKIE_SECURE"}
    for other in others - {named}:
        assert other not in message


def test_development_allows_plain_http_and_an_insecure_cookie() -> None:
    s = settings(CONSOLE_COOKIE_SECURE="0", CONSOLE_PORT="18083")
    assert s.cookie_secure is False
    assert s.public_base_url() == "http://127.0.0.1:18083"
