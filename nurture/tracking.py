"""Signed tokens for the links we put in emails: unsubscribe, open pixel, clicks.

A token is signed with the secret key: it cannot be forged, and a tampered or
truncated token reads as None, never as an error.

- The unsubscribe and pixel tokens name one delivery, opaquely: the delivery's number
  enciphered (one AES block with a key per purpose), so a link tells nobody how much
  is sent nor which deliveries are neighbours. Tokens written before carried the
  number readably (signed); they keep working.
- A click link (`/c/<token>`) carries its delivery, the link's index and the address
  it leads to, so a click redirects without asking the database: it works while the
  database restarts, and costs about what the pixel costs. Links sent before carry
  only the delivery (`/c/<token>/<index>`) and are looked up; both keep working.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from base64 import urlsafe_b64decode, urlsafe_b64encode
from functools import lru_cache
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
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


class _Opaque:
    """A delivery's number as 22 URL-safe characters, and back.

    One AES block: the number (8 bytes) and 8 zero bytes, enciphered with a key of its
    own per purpose. A block cipher is a keyed permutation: every number gets its own
    token, and no one without the key can tell which number, nor walk to the next.
    Reading deciphers and checks the zero bytes, so a made-up token reads as None
    (one chance in 2**64), without a signature beside it.
    """

    LENGTH = 22  # 16 bytes in URL-safe base64, without padding

    def __init__(self, secret_key: str, purpose: str):
        key = hmac.new(secret_key.encode(), f"nurture.{purpose}.opaque".encode(), hashlib.sha256)
        # ECB on exactly one block is the bare permutation, which is what is wanted here.
        self._cipher = Cipher(algorithms.AES(key.digest()), modes.ECB())  # noqa: S305
        self._local = threading.local()  # cipher contexts are not shared between threads

    def _contexts(self) -> Any:
        local = self._local
        if not hasattr(local, "encryptor"):
            local.encryptor = self._cipher.encryptor()
            local.decryptor = self._cipher.decryptor()
        return local

    def dumps(self, number: int) -> str:
        block = self._contexts().encryptor.update(number.to_bytes(8, "big") + bytes(8))
        return urlsafe_b64encode(block).rstrip(b"=").decode("ascii")

    def loads(self, token: object) -> int | None:
        if not isinstance(token, str) or len(token) != self.LENGTH or not token.isascii():
            return None
        try:
            block = urlsafe_b64decode(token + "==")
        except ValueError:
            return None
        # One spelling per token: base64's last character has bits that decode ignores.
        if len(block) != 16 or urlsafe_b64encode(block).rstrip(b"=").decode() != token:
            return None
        plain = self._contexts().decryptor.update(block)
        if plain[8:] != bytes(8):
            return None
        return int.from_bytes(plain[:8], "big")


def _legacy(token: str) -> bool:
    """Tokens written before ids were opaque: itsdangerous' `payload.signature`."""
    return "." in token


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
        self._opaque_open = _Opaque(secret_key, "open")
        self._opaque_unsubscribe = _Opaque(secret_key, "unsubscribe")
        self._opaque_link = _Opaque(secret_key, "link")

    def open(self, delivery_id: int) -> str:
        return self._opaque_open.dumps(delivery_id)

    def read_open(self, token: str) -> int | None:
        if _legacy(token):
            return _integer(self._open.loads(token, ID_TOKEN_LIMIT))
        return self._opaque_open.loads(token)

    def link(self, delivery_id: int, link: int, target: str) -> str:
        """A click link's token: the redirect's target travels in it, signed."""
        return self._link.dumps([self._opaque_link.dumps(delivery_id), link, target])

    def read_link(self, token: str) -> CarriedLink | None:
        found = self._link.loads(token, LINK_TOKEN_LIMIT)
        if not isinstance(found, list) or len(found) != 3:
            return None
        carried, link, target = found
        # Links sent before ids were opaque carry the number itself (signed all the same).
        delivery_id = _integer(carried)
        if delivery_id is None:
            delivery_id = self._opaque_link.loads(carried)
        if delivery_id is None or _integer(link) is None or not isinstance(target, str):
            return None
        return CarriedLink(delivery_id, link, target)

    def click(self, delivery_id: int) -> str:
        """The token of the links sent before they carried their target: one per
        delivery, the link index beside it in the path, the address looked up."""
        return self._click.dumps(delivery_id)

    def read_click(self, token: str) -> int | None:
        return _integer(self._click.loads(token, ID_TOKEN_LIMIT))

    def unsubscribe(self, delivery_id: int) -> str:
        return self._opaque_unsubscribe.dumps(delivery_id)

    def read_unsubscribe(self, token: str) -> int | None:
        if _legacy(token):
            return _integer(self._unsubscribe.loads(token, ID_TOKEN_LIMIT))
        return self._opaque_unsubscribe.loads(token)


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
