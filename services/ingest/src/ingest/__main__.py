"""``python -m ingest``: serve the ingest API."""

from __future__ import annotations

import uvicorn

from ingest.app import create_app
from ingest.settings import IngestSettings
from shared.logs import configure_logging


def main() -> None:
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level)
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
