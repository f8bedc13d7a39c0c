"""``python -m assessor``: run the assessor worker (faust) with its read API."""

from __future__ import annotations

import sys

import mode.loop

# Before anything creates a loop. With asyncio's own loop, the loop itself was a quarter of
# the worker's time under a backlog (py-spy).
mode.loop.use("uvloop")

from assessor.app import create_app  # noqa: E402 - after the loop policy is set
from assessor.settings import AssessorSettings  # noqa: E402


def main() -> None:
    settings = AssessorSettings()
    app = create_app(settings)
    # --quiet: no start-up banner on stdout; the logs are JSON (create_app's logging_config).
    argv = ["--quiet", "worker", "--loglevel", settings.log_level.lower(), *sys.argv[1:]]
    sys.argv = [sys.argv[0], *argv]
    app.main()


if __name__ == "__main__":
    main()
