"""Signed tokens for the links we put in emails: unsubscribe, open pixel, clicks.

A token is signed with the secret key: it cannot be forged, and a tampered or
truncated token reads as None, never as an error.

- The unsubscribe and pixel tokens name one delivery.
- A click link (`/c/<token>`) carries its delivery, the link's index and the address
  it leads to, so a click redirects without asking the database: it works while the
  database restarts, and costs about what the pixel costs. Links sent before carry
  only the delivery (`/c/<token>/<index>`) and are looked up; both keep working.
"""

from __future__ import annotations

import hmac
import json
from functools import lru_cache
from typing import Any, NamedTuple

from itsdangerous import BadData, URLSafeSerializer
from itsdangerous.encoding import base64_encode

ID_TOKEN_LIMIT = 200  # characters: a delivery id's token is about 30
LINK_TOKEN_LIMIT = 8192  # a carried address, its index and delivery: longer is not ours
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # as itsdangerous


class _Signing:
    """itsdangerous' URL-safe token, signed with the key derived once.

    `URLSafeSerializer.dumps` derives the key again for every token, and the dispatcher
    signs a token for every link of every email. A delivery id's token is byte for byte
    the serializer's (checked when this is built; on any difference the serializer
    itself signs), and `URLSafeSerializer.loads` reads every token made here.
    """

    def __init__(self, serializer: URLSafeSerializer):
        self.serializer = serializer
        signer = serializer.make_signer()
        # A keyed HMAC copied per token: `hmac.digest` lets go of the GIL for even a few
        # bytes, and a web worker's request thread then waits for the spool's writer
        # thread to hand it back (up to the 5 ms switch interval).
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method().name)
        samples: tuple[Any, ...] = (0, 7, 123_456_789, [12, 3, "https://a.example/é?x=1&y"])
        self._fast = all(self._sign(v) == serializer.dumps(v) for v in samples)

    def _mac_of(self, data: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(data)
        return mac.digest()

    def _sign(self, value: Any) -> str:
        payload = base64_encode(_encode(value).encode("utf-8"))
        signature = base64_encode(self._mac_of(payload))
        return (payload + b"." + signature).decode("ascii")

    def dumps(self, value: Any) -> str:
        # The serializer compresses payloads that zlib makes shorter: an id of 10 digits
        # or more, say, where it is left to it (links already sent keep their tokens).
        # A link's token is never compressed (its address is readable in the email
        # anyway); `loads`, and the serializer, read both.
        small = isinstance(value, list) or (isinstance(value, int) and 0 <= value < 10**9)
        if self._fast and small:
            return self._sign(value)
        return str(self.serializer.dumps(value))

    def loads(self, token: str, limit: int) -> Any:
        """The value a token carries, or None when it is not one of ours.

        `URLSafeSerializer.loads` derives the key again and builds a signer per token,
        half the cost of an open pixel. Here the signature must be the one `dumps` writes,
        character for character (the serializer also takes variants of it that decode
        to the same bytes; we never wrote those)."""
        if len(token) > limit:  # not worth verifying
            return None
        if not self._fast:
            return _load(self.serializer, token)
        payload, dot, signature = token.rpartition(".")
        if not dot or not payload.isascii() or not signature.isascii():
            return None
        data = payload.encode("ascii")
        expected = base64_encode(self._mac_of(data))
        if not hmac.compare_digest(expected, signature.encode("ascii")):
            return None
        try:
            return self.serializer.load_payload(data)
        except (BadData, UnicodeError, ValueError, TypeError):
            return None


class CarriedLink(NamedTuple):
    """What a click link carries: its delivery, the link's index, where it leads."""

    delivery_id: int
    link: int  # the index in the delivery's links
    target: str


class Tokens:
    def __init__(self, secret_key: str):
        self._unsubscribe = _Signing(URLSafeSerializer(secret_key, salt="nurture.unsubscribe"))
        self._open = _Signing(URLSafeSerializer(secret_key, salt="nurture.open"))
        self._click = _Signing(URLSafeSerializer(secret_key, salt="nurture.click"))
        self._link = _Signing(URLSafeSerializer(secret_key, salt="nurture.link"))

    def open(self, delivery_id: int) -> str:
        return self._open.dumps(delivery_id)

    def read_open(self, token: str) -> int | None:
        return _integer(self._open.loads(token, ID_TOKEN_LIMIT))

    def link(self, delivery_id: int, link: int, target: str) -> str:
        """A click link's token: the redirect's target travels in it, signed."""
        return self._link.dumps([delivery_id, link, target])

    def read_link(self, token: str) -> CarriedLink | None:
        found = self._link.loads(token, LINK_TOKEN_LIMIT)
        if not isinstance(found, list) or len(found) != 3:
            return None
        delivery_id, link, target = found
        if _integer(delivery_id) is None or _integer(link) is None or not isinstance(target, str):
            return None
        return CarriedLink(delivery_id, link, target)

    def click(self, delivery_id: int) -> str:
        """The token of the links sent before they carried their target: one per
        delivery, the link index beside it in the path, the address looked up."""
        return self._click.dumps(delivery_id)

    def read_click(self, token: str) -> int | None:
        return _integer(self._click.loads(token, ID_TOKEN_LIMIT))

    def unsubscribe(self, delivery_id: int) -> str:
        return self._unsubscribe.dumps(delivery_id)

    def read_unsubscribe(self, token: str) -> int | None:
        return _integer(self._unsubscribe.loads(token, ID_TOKEN_LIMIT))


@lru_cache(maxsize=8)
def tokens_for(secret_key: str) -> Tokens:
    """One `Tokens` per key: building one derives and checks four keys, too much per hit."""
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


def click_url(base_url: str, token: str) -> str:
    return f"{base_url}/c/{token}"


def open_url(base_url: str, token: str) -> str:
    return f"{base_url}/o/{token}.gif"
