"""``python -m notifier``: serve the notifier API and run its loops."""

from __future__ import annotations

import logging

from notifier.app import create_app
from notifier.settings import NotifierSettings
from shared.logs import configure_logging
from shared.web import serve


def main() -> None:
    settings = NotifierSettings()
    configure_logging("notifier", settings.log_level, settings.log_ref_key.get_secret_value())
    logging.getLogger("twilio").setLevel(logging.WARNING)  # its request log names recipients
    serve(create_app(settings), settings.bind_host, settings.port)


if __name__ == "__main__":
    main()
