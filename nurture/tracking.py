"""Signed tokens for the links we put in emails (unsubscribe now; opens and clicks next).

A token names one delivery and is signed with the secret key: it cannot be forged,
and a tampered or truncated token reads as None, never as an error.
"""

from __future__ import annotations

from itsdangerous import BadData, URLSafeSerializer


class Tokens:
    def __init__(self, secret_key: str):
        self._unsubscribe = URLSafeSerializer(secret_key, salt="nurture.unsubscribe")

    def unsubscribe(self, delivery_id: int) -> str:
        return str(self._unsubscribe.dumps(delivery_id))

    def read_unsubscribe(self, token: str) -> int | None:
        try:
            value = self._unsubscribe.loads(token)
        except (BadData, UnicodeError, ValueError):
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url}/u/{token}"
