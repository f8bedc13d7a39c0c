"""``python -m assessor``: run the assessor worker (faust) with its read API."""

from __future__ import annotations

import sys

from assessor.app import create_app
from assessor.settings import AssessorSettings


def main() -> None:
    settings = AssessorSettings()
    app = create_app(settings)
    # --quiet: no start-up banner on stdout; the logs are JSON (create_app's logging_config).
    argv = ["--quiet", "worker", "--loglevel", settings.log_level.lower(), *sys.argv[1:]]
    sys.argv = [sys.argv[0], *argv]
    app.main()


if __name__ == "__main__":
    main()
