"""``python -m services.intake``: run intake on its port (8080 by default), in
``INTAKE_HTTP_WORKERS`` processes."""

from services.intake.app import build_app
from services.intake.server import protocol
from services.intake.settings import IntakeSettings
from shared.serving import serve

if __name__ == "__main__":
    settings = IntakeSettings()
    http = protocol(settings.http_parser)
    if settings.http_workers > 1:
        app = "services.intake.app:create_app"
        serve(app, settings, service="intake", workers=settings.http_workers, http=http)
    else:
        serve(build_app(settings), settings, service="intake", http=http)
