"""``python -m ingest``: serve the ingest API."""

from __future__ import annotations

from ingest.app import create_app
from ingest.settings import IngestSettings
from shared.logs import configure_logging
from shared.web import serve


def main() -> None:
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level, settings.log_ref_key.get_secret_value())
    serve(create_app(settings), settings.bind_host, settings.port)


if __name__ == "__main__":
    main()
