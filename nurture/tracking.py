"""Signed tokens for the links we put in emails: unsubscribe, open pixel, clicks.

A token names one delivery and is signed with the secret key: it cannot be forged,
and a tampered or truncated token reads as None, never as an error.
"""

from __future__ import annotations

from itsdangerous import BadData, URLSafeSerializer


class Tokens:
    def __init__(self, secret_key: str):
        self._unsubscribe = URLSafeSerializer(secret_key, salt="nurture.unsubscribe")
        self._open = URLSafeSerializer(secret_key, salt="nurture.open")
        self._click = URLSafeSerializer(secret_key, salt="nurture.click")

    def open(self, delivery_id: int) -> str:
        return str(self._open.dumps(delivery_id))

    def read_open(self, token: str) -> int | None:
        return _integer(_load(self._open, token))

    def click(self, delivery_id: int) -> str:
        """One token per delivery; the link index travels beside it in the path.

        Safe because a click can only reach a URL stored for that delivery, and
        cheaper than signing every link of every email.
        """
        return str(self._click.dumps(delivery_id))

    def read_click(self, token: str) -> int | None:
        return _integer(_load(self._click, token))

    def unsubscribe(self, delivery_id: int) -> str:
        return str(self._unsubscribe.dumps(delivery_id))

    def read_unsubscribe(self, token: str) -> int | None:
        return _integer(_load(self._unsubscribe, token))


def _load(serializer: URLSafeSerializer, token: str) -> object:
    if len(token) > 200:  # ours are short; anything longer is not worth verifying
        return None
    try:
        return serializer.loads(token)
    except (BadData, UnicodeError, ValueError, TypeError):
        return None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url}/u/{token}"


def click_url(base_url: str, token: str, link: int) -> str:
    return f"{base_url}/c/{token}/{link}"


def open_url(base_url: str, token: str) -> str:
    return f"{base_url}/o/{token}.gif"
