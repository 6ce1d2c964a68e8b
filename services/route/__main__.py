"""``python -m services.route``: run route on its port (8082 by default)."""

from services.route.app import build_app
from services.route.settings import RouteSettings
from shared.serving import serve

if __name__ == "__main__":
    settings = RouteSettings()
    serve(build_app(settings), settings, service="route")
