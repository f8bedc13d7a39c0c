"""What ``ENVIRONMENT=production`` refuses: every development secret or setting, by name.

One list of checks, run by every service's settings (``CommonSettings``) at start-up. A
check looks at the settings object (a service's own fields are read with ``getattr``, so
a check about a field only some services have simply passes for the others) and returns
why it refuses, or None. The message names the setting and the reason, never its value.

To add one (the encryption master key, the console's secret key…)::

    from shared.production import register

    @register
    def _master_key(s: object) -> str | None:
        key = getattr(s, "master_key", None)
        return "MASTER_KEY (the development key)" if key is not None and ... else None
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

Check = Callable[[Any], str | None]

#: The known development values (the sandbox's Twilio token, the local database's and the
#: audit writer's passwords); the log key's is ``shared.logs.DEV_LOG_REF_KEY``.
DEV_TWILIO_AUTH_TOKEN = "sandbox-auth-token"  # noqa: S105
DEV_DATABASE_PASSWORD = "recovery"  # noqa: S105
DEV_AUDIT_PASSWORD = "hfs_audit_writer"  # noqa: S105

CHECKS: list[Check] = []


def register(check: Check) -> Check:
    """Add a check (a decorator); it runs for every service in production."""
    CHECKS.append(check)
    return check


def refusals(settings: Any) -> list[str]:
    """Every refusal for these settings (empty: production may start)."""
    return [why for check in CHECKS if (why := check(settings)) is not None]


def _secret(value: object) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str) else None


def is_loopback(host: str | None) -> bool:
    if host in ("localhost", None, ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@register
def _api_token(s: Any) -> str | None:
    if getattr(s, "api_token", None) is not None:
        return "API_TOKEN (the development credential: unset it)"
    return None


@register
def _twilio_token(s: Any) -> str | None:
    if _secret(getattr(s, "twilio_auth_token", None)) == DEV_TWILIO_AUTH_TOKEN:
        return "TWILIO_AUTH_TOKEN (the sandbox's default)"
    return None


def _database(name: str, url: str | None, dev_password: str, whose: str) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password == dev_password:
        return f"{name} (the default {whose} password)"
    query = parse_qs(parts.query)
    if not is_loopback(parts.hostname) and query.get("sslmode") != ["verify-full"]:
        return f"{name} (leaves loopback without sslmode=verify-full)"
    return None


@register
def _database_url(s: Any) -> str | None:
    url = _secret(getattr(s, "database_url", None))
    return _database("DATABASE_URL", url, DEV_DATABASE_PASSWORD, "database")


@register
def _audit_database_url(s: Any) -> str | None:
    if not hasattr(s, "audit_database_url"):
        return None
    url = _secret(s.audit_database_url)
    if url is None:
        return "AUDIT_DATABASE_URL (unset: set the audit writer's role)"
    return _database("AUDIT_DATABASE_URL", url, DEV_AUDIT_PASSWORD, "audit writer")


@register
def _log_ref_key(s: Any) -> str | None:
    from shared.logs import DEV_LOG_REF_KEY

    if _secret(getattr(s, "log_ref_key", None)) == DEV_LOG_REF_KEY:
        return "LOG_REF_KEY (the development key)"
    return None


@register
def _simulated_clock(s: Any) -> str | None:
    if getattr(s, "simulated_clock", False):
        return "SIMULATED_CLOCK (1: the simulated clock is for tests and demos)"
    return None


@register
def _public_base_url(s: Any) -> str | None:
    url = getattr(s, "public_base_url", None)
    if isinstance(url, str) and url.strip() and urlsplit(url.strip()).scheme != "https":
        return "PUBLIC_BASE_URL (not https://: Twilio would send patients' texts in the clear)"
    return None


@register
def _twilio_api_base_url(s: Any) -> str | None:
    url = getattr(s, "twilio_api_base_url", None)
    if not isinstance(url, str) or not url.strip():
        return None  # empty: Twilio itself
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or is_loopback(parts.hostname) or parts.hostname == "sandbox":
        return "TWILIO_API_BASE_URL (points at the SMS sandbox, not the provider)"
    return None


@register
def _kafka(s: Any) -> str | None:
    if not hasattr(s, "kafka_bootstrap"):
        return None
    from shared.kafka_security import KafkaSecurity

    sec = KafkaSecurity()
    if sec.security_protocol != "SASL_SSL":
        return None  # a broker reached only on a private network (say so in the deployment)
    if sec.uses_generated_password():
        return "KAFKA_SASL_PASSWORD (the development password generated under .run/)"
    if sec.uses_generated_ca():
        return "KAFKA_CA_FILE (the development CA generated under .run/)"
    return None


@register
def _master_key(s: Any) -> str | None:
    from shared.settings import DEV_MASTER_KEY

    if _secret(getattr(s, "master_key", None)) == DEV_MASTER_KEY:
        return "MASTER_KEY (the development key)"
    return None
