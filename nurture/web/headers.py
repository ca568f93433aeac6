"""Security headers on every answer.

- Every response: `X-Content-Type-Options: nosniff` (a browser never guesses a type).
- Every HTML page: a Content-Security-Policy that allows no script at all (our pages
  have none) and no framing (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for
  older browsers), forms posted only to us, and `Referrer-Policy: no-referrer`. Their
  one inline `<style>` is allowed; nothing else loads.
- A route that set a stricter policy of its own (the click retry page) keeps it.
"""

from __future__ import annotations

from flask import Flask, Response

PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self';"
    " base-uri 'none'; frame-ancestors 'none'"
)


def install(app: Flask) -> None:
    app.after_request(secure)


def secure(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
    return response
