"""``python -m sms_sandbox``: serve the sandbox with uvicorn on SANDBOX_HOST:SANDBOX_PORT."""

from __future__ import annotations

import logging

import uvicorn

from sms_sandbox.app import create_app
from sms_sandbox.settings import SandboxSettings


def main() -> None:
    settings = SandboxSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # No access log: request lines can carry phone numbers (``/sandbox/messages?to=...``).
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
