"""``python -m assessor``: run the assessor worker (faust) with its read API."""

from __future__ import annotations

import sys

from assessor.app import create_app
from assessor.settings import AssessorSettings


def main() -> None:
    settings = AssessorSettings()
    app = create_app(settings)
    sys.argv = [sys.argv[0], "worker", "--loglevel", settings.log_level.lower(), *sys.argv[1:]]
    app.main()


if __name__ == "__main__":
    main()
