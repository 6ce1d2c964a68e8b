"""``python -m services.verify``: run verify on its port (8081 by default)."""

from services.verify.app import build_app
from services.verify.settings import VerifySettings
from shared.serving import serve

if __name__ == "__main__":
    settings = VerifySettings()
    serve(build_app(settings), settings, service="verify")
