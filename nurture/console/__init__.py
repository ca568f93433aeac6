"""The marketer's web console: server-rendered pages under `/console`, for signed-in
users only (docs/console.md).

- `users.py`: users and passwords in the database, the leads a user may see (no Flask);
- `auth.py`: signing in and out, sessions, the `requires(role)` decorator, CSRF;
- `pages.py` and `overview.py`: the home page, its navigation and its figures;
- `sequences.py`, `leads.py`, `dashboards.py`, `operations.py`: the four sections.

Sessions and CSRF tokens live in Flask's signed session cookie, which only the console
uses: the JSON API keeps its API keys, and the tracking, form and unsubscribe routes
their signed links, untouched by either. The pages' security headers are set with
every other page's, in nurture.web.headers.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Flask

from nurture.runtime import Runtime

blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)


def install(app: Flask) -> None:
    """The console's cookie, sign-in and CSRF settings, then its pages."""
    # The sections' routes join the blueprint when their modules are imported.
    from nurture.console import (  # noqa: F401
        accounts,
        auth,
        dashboards,
        leads,
        operations,
        pages,
        sequences,
    )

    runtime: Runtime = app.extensions["nurture"]
    settings = runtime.settings
    secure = settings.console_cookies_secure
    lifetime = timedelta(hours=settings.console_session_hours)
    app.config.update(
        # The cookie goes to the console's pages only: the API, tracking, forms and
        # unsubscribe requests never carry it, and answer as they did without it.
        # `__Secure-`: a browser takes it only over https, from a secure page.
        SESSION_COOKIE_NAME="__Secure-nurture_console" if secure else "nurture_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=lifetime,
        # The cookie expires with the sign-in, not a lifetime after the latest page.
        SESSION_REFRESH_EACH_REQUEST=False,
        # CSRF only where the console is (its blueprint calls `protect`): the API, the
        # website forms and the one-click unsubscribe are posted by other sites or
        # programs on purpose and carry their own proof.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=int(lifetime.total_seconds()),
    )
    auth.install(app)
    app.register_blueprint(blueprint)
