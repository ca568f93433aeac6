"""Security headers on every answer.

- Every response: `X-Content-Type-Options: nosniff` (a browser never guesses a type).
- Every HTML page: a Content-Security-Policy and no framing (`frame-ancestors 'none'`,
  and `X-Frame-Options: DENY` for older browsers), forms posted only to us.
  - The pages a lead or a visitor sees allow no script at all (they have none) and
    their one inline `<style>`; nothing else loads. `Referrer-Policy: no-referrer`.
  - The console's pages (`/console`) allow scripts, styles and images from this site
    only: no inline script, style or event handler, so a value that escaped its
    template still runs nothing. `Referrer-Policy: same-origin`: its forms tell this
    site where they come from (Flask-WTF checks it over https), never another site.
    `Cache-Control: no-store`: a signed-in page is not kept after signing out.
- A route that set a stricter policy of its own (the click retry page) keeps it.
"""

from __future__ import annotations

from flask import Flask, Response, has_request_context, request

PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self';"
    " base-uri 'none'; frame-ancestors 'none'"
)
CONSOLE = "/console"
CONSOLE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none';"
    " frame-ancestors 'none'"
)


def install(app: Flask) -> None:
    app.after_request(secure)


def secure(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        console = has_request_context() and in_console(request.path)
        headers.setdefault("Content-Security-Policy", CONSOLE_POLICY if console else PAGE_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin" if console else "no-referrer")
        if console:
            headers.setdefault("Cache-Control", "no-store")
    return response


def in_console(path: str) -> bool:
    return path == CONSOLE or path.startswith(CONSOLE + "/")
