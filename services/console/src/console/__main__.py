"""``python -m console``: serve the care-team console and run its projection."""

from __future__ import annotations

from console.app import create_app
from console.settings import ConsoleSettings
from console.signin import OidcSignIn
from shared.logs import configure_logging
from shared.web import serve


def main() -> None:
    settings = ConsoleSettings()
    configure_logging("console", settings.log_level)
    sign_in = OidcSignIn(settings)
    app = create_app(settings, sign_in.authenticate, extra_routes=sign_in.install)
    serve(app, settings.bind_host, settings.port)


if __name__ == "__main__":
    main()
