"""``python -m notifier``: serve the notifier API and run its loops."""

from __future__ import annotations

import logging

import uvicorn

from notifier.app import create_app
from notifier.settings import NotifierSettings
from shared.logs import configure_logging


def main() -> None:
    settings = NotifierSettings()
    configure_logging("notifier", settings.log_level)
    logging.getLogger("twilio").setLevel(logging.WARNING)  # its request log names recipients
    uvicorn.run(
        create_app(settings),
        host=settings.bind_host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
