"""The tracking benchmark's baseline: a bare Flask route answering the same GIF (42 bytes).

No database, no token check, no recording: what Flask and gunicorn alone cost for a
request of the same shape as the open pixel. Served by `gunicorn tracking_app:app`
from this folder (bench/tracking.py starts it).
"""

from __future__ import annotations

import base64

from flask import Flask, Response

# The same image and headers as nurture/web/tracking.py, copied so that nothing of the
# engine (SQLAlchemy, settings, content) is imported here.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, max-age=0", "Referrer-Policy": "no-referrer"}


def create_app() -> Flask:
    app = Flask(__name__)

    @app.route("/o/<token>.gif", methods=["GET", "HEAD"])
    def open_pixel(token: str) -> Response:
        return Response(PIXEL, mimetype="image/gif", headers=NO_STORE)

    return app


app = create_app()  # gunicorn's entry point, as wsgi.py is for the engine
