"""Signed tokens for the links we put in emails: unsubscribe, open pixel, clicks.

A token names one delivery and is signed with the secret key: it cannot be forged,
and a tampered or truncated token reads as None, never as an error.
"""

from __future__ import annotations

import hmac
from functools import lru_cache

from itsdangerous import BadData, URLSafeSerializer
from itsdangerous.encoding import base64_encode


class _Signing:
    """itsdangerous' URL-safe token for a delivery id, signed with the key derived once.

    `URLSafeSerializer.dumps` derives the key again for every token, and the dispatcher
    signs three per email. The tokens are byte for byte the serializer's (checked when
    this is built; on any difference the serializer itself signs), so `loads` reads them.
    """

    def __init__(self, serializer: URLSafeSerializer):
        self.serializer = serializer
        signer = serializer.make_signer()
        # A keyed HMAC copied per token: `hmac.digest` lets go of the GIL for even a few
        # bytes, and a web worker's request thread then waits for the spool's writer
        # thread to hand it back (up to the 5 ms switch interval).
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method().name)
        self._fast = all(self._sign(n) == serializer.dumps(n) for n in (0, 7, 123_456_789))

    def _sign(self, delivery_id: int) -> str:
        payload = base64_encode(str(delivery_id).encode("ascii"))
        signature = base64_encode(self._mac_of(payload))
        return (payload + b"." + signature).decode("ascii")

    def _mac_of(self, data: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(data)
        return mac.digest()

    def dumps(self, delivery_id: int) -> str:
        # Longer payloads may be zlib-compressed by the serializer: leave those to it.
        if self._fast and 0 <= delivery_id < 10**9:
            return self._sign(delivery_id)
        return str(self.serializer.dumps(delivery_id))

    def loads(self, token: str) -> int | None:
        """The delivery id a token names, or None when it is not one of ours.

        `URLSafeSerializer.loads` derives the key again and builds a signer per token,
        half the cost of an open pixel. Here the signature must be the one `dumps` writes,
        character for character (the serializer also takes variants of it that decode
        to the same bytes; we never wrote those)."""
        if len(token) > 200:  # ours are short; anything longer is not worth verifying
            return None
        if not self._fast:
            return _integer(_load(self.serializer, token))
        payload, dot, signature = token.rpartition(".")
        if not dot or not payload.isascii() or not signature.isascii():
            return None
        data = payload.encode("ascii")
        expected = base64_encode(self._mac_of(data))
        if not hmac.compare_digest(expected, signature.encode("ascii")):
            return None
        try:
            return _integer(self.serializer.load_payload(data))
        except (BadData, UnicodeError, ValueError, TypeError):
            return None


class Tokens:
    def __init__(self, secret_key: str):
        self._unsubscribe = _Signing(URLSafeSerializer(secret_key, salt="nurture.unsubscribe"))
        self._open = _Signing(URLSafeSerializer(secret_key, salt="nurture.open"))
        self._click = _Signing(URLSafeSerializer(secret_key, salt="nurture.click"))

    def open(self, delivery_id: int) -> str:
        return self._open.dumps(delivery_id)

    def read_open(self, token: str) -> int | None:
        return self._open.loads(token)

    def click(self, delivery_id: int) -> str:
        """One token per delivery; the link index travels beside it in the path.

        Safe because a click can only reach a URL stored for that delivery, and
        cheaper than signing every link of every email.
        """
        return self._click.dumps(delivery_id)

    def read_click(self, token: str) -> int | None:
        return self._click.loads(token)

    def unsubscribe(self, delivery_id: int) -> str:
        return self._unsubscribe.dumps(delivery_id)

    def read_unsubscribe(self, token: str) -> int | None:
        return self._unsubscribe.loads(token)


@lru_cache(maxsize=8)
def tokens_for(secret_key: str) -> Tokens:
    """One `Tokens` per key: building one derives and checks three keys, too much per hit."""
    return Tokens(secret_key)


def _load(serializer: URLSafeSerializer, token: str) -> object:
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
