"""Flask's signed-cookie sessions, at no cost to the requests that have no use for one.

Once the app has a secret key, Flask builds a serializer (deriving its key, signing a
test value) for every request and saves the session after it, even when nothing reads
it: a third of what an open pixel costs. Here:

- the tracking routes (`SESSIONLESS` path prefixes) get Flask's null session: they are
  hit by mail clients and image proxies, and nothing there may depend on a cookie;
- any other request without the session cookie gets an empty session straight away;
- a request with the cookie is read exactly as Flask reads it.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

SESSIONLESS = ("/o/", "/c/")


class CookieSessions(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not app.secret_key or request.path.startswith(SESSIONLESS):
            return None  # Flask's null session: saving it is skipped
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)
