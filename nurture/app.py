"""The Flask application factory. Nothing runs at import time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from nurture import console, redaction
from nurture.config import load_settings
from nurture.runtime import Runtime
from nurture.web import headers
from nurture.web.sessions import CookieSessions


def create_app(
    test_config: Mapping[str, Any] | None = None, runtime: Runtime | None = None
) -> Flask:
    """Build the web app: JSON API, unsubscribe pages, health and metrics, the console.

    The dispatcher never runs here: web workers only serve requests
    (`nurture run` starts the scheduler beside the app, in its own thread).
    """
    redaction.install_logging()  # no log line of the app carries a secret or an address
    if runtime is None:
        runtime = Runtime(load_settings(overrides=test_config))
    app = Flask(__name__)
    # No redirects of our own making: "//host" paths must not be "fixed" by a redirect.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.config["SECRET_KEY"] = runtime.secret_key
    app.session_interface = CookieSessions()
    app.extensions["nurture"] = runtime
    headers.install(app)

    from nurture.web import accounts, api, forms, health, openapi, reporting, tracking, unsubscribe

    assert reporting and accounts  # their routes join the api blueprint when imported

    app.register_blueprint(api.blueprint)
    app.register_blueprint(tracking.blueprint)
    app.register_blueprint(forms.blueprint)
    app.register_blueprint(unsubscribe.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(openapi.blueprint)
    console.install(app)  # the web console under /console: sign-in, CSRF, its pages

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _api_errors(error: HTTPException) -> Response | HTTPException:
        # Under /api/ every answer is JSON, even for a URL no route knows.
        if not request.path.startswith("/api/"):
            return error
        response = jsonify(
            error={"code": (error.name or "error").lower().replace(" ", "_"),
                   "message": error.description or ""}
        )  # fmt: skip
        response.status_code = error.code or 404
        return response

    return app
