"""``python -m services.notify``: run notify on its port (8083 by default)."""

from services.notify.app import build_app
from services.notify.settings import NotifySettings
from shared.serving import serve

if __name__ == "__main__":
    settings = NotifySettings()
    serve(build_app(settings), settings, service="notify")
