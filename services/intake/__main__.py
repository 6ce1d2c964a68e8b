"""``python -m services.intake``: run intake on its port (8080 by default)."""

from services.intake.app import build_app
from services.intake.settings import IntakeSettings
from shared.runtime import serve

if __name__ == "__main__":
    settings = IntakeSettings()
    serve(build_app(settings), settings, service="intake")
