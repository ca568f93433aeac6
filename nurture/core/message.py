"""Build the MIME message of one email: headers that lead data cannot forge, two bodies.

Lead data (names, subjects rendered from lead fields) reaches headers, so every text
value is cleaned before the message is built: control characters become spaces and
`=?` is split, because Python's header parser decodes encoded words found in plain
text and would otherwise turn `=?utf-8?q?=0D=0ABcc...?=` back into a line break.
Addresses are never cleaned: a bad one raises `InvalidAddress` naming the field.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.charset import BASE64, Charset
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import SMTP, default
from email.utils import format_datetime, formataddr, getaddresses
from functools import lru_cache
from typing import Any


class MessageError(ValueError):
    """An email cannot be built from these values; the message names the field."""


class InvalidAddress(MessageError):
    """An email address is malformed or carries characters that could forge headers."""


class InvalidHeader(MessageError):
    """A header name or a header value (URL, Message-ID, list id) is not acceptable."""


@dataclass(frozen=True)
class OutgoingEmail:
    """Everything needed to build one email; `message_id` has no angle brackets."""

    message_id: str
    from_name: str
    from_email: str
    to_name: str | None
    to_email: str
    reply_to: str | None
    subject: str
    html: str
    text: str
    list_id: str
    list_name: str
    unsubscribe_url: str | None  # None: not a list (an internal notice), no List-Unsubscribe
    unsubscribe_mailto: str | None
    date: datetime
    headers: Mapping[str, str] = field(default_factory=dict)


class _VerbatimHeader(UnstructuredHeader, BaseHeader):
    """A header written as given: folding or RFC 2047 encoding would break its URLs.

    The value is validated printable ASCII; it is only folded between its `<...>` items.
    """

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        super().parse(value, kwds)
        kwds["decoded"] = value  # never decode `=?...?=` found in a URL

    def fold(self, *, policy: Any) -> str:
        line = f"{self.name}: {self}"
        if len(line) <= policy.max_line_length:
            return line + policy.linesep
        return f"{self.name}: " + f",{policy.linesep} ".join(str(self).split(", ")) + policy.linesep


_REGISTRY = HeaderRegistry()
_REGISTRY.map_to_type("list-unsubscribe", _VerbatimHeader)
POLICY = SMTP.clone(header_factory=_REGISTRY)
"""SMTP rules (CRLF, 7-bit headers) with List-Unsubscribe kept verbatim."""

# Headers the builder writes itself, or that would change who receives the message.
_RESERVED = frozenset(
    name.lower()
    for name in (
        "From", "To", "Cc", "Bcc", "Reply-To", "Sender", "Subject", "Date", "Message-ID",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Return-Path",
        "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "In-Reply-To", "References",
    )
)  # fmt: skip
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,75}")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")  # fmt: skip
_LIST_ID_JUNK = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_URL_MAX = 900  # keeps List-Unsubscribe under the 998-character line limit
# Bidi embedding and override marks can make a display name read backwards.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


# Unicode categories Cc, Zl and Zp, plus the bidi marks above, as one character class.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029" + "".join(sorted(_BIDI)) + "]")


def clean_text(value: str) -> str:
    """One line of header text: controls become spaces, whitespace collapses, `=?` splits."""
    spaced = _CONTROL.sub(" ", value)
    return " ".join(spaced.split()).replace("=?", "= ?")


def _domain(field_name: str, value: str) -> str:
    try:
        ascii_domain = value.encode("idna").decode("ascii") if not value.isascii() else value
    except UnicodeError as error:
        raise InvalidAddress(f"{field_name}: {value!r} is not a valid domain ({error})") from None
    if not _DOMAIN.fullmatch(ascii_domain):
        raise InvalidAddress(f"{field_name}: {value!r} is not a valid domain")
    return ascii_domain.lower()


def parse_address(field_name: str, value: str, display_name: str | None = None) -> Address:
    """A checked `Address`; raises `InvalidAddress` naming `field_name` when malformed."""
    if _CONTROL.search(value):
        raise InvalidAddress(f"{field_name}: {value!r} contains a line break or control character")
    addr = value.strip()
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(f"{field_name}: {value!r} is not an email address (name@domain)")
    if not local.isascii():
        raise InvalidAddress(f"{field_name}: {value!r} has a non-ASCII local part (unsupported)")
    if not _LOCAL_PART.fullmatch(local) or "=?" in local:
        raise InvalidAddress(f"{field_name}: {value!r} has an invalid local part {local!r}")
    name = clean_text(display_name or "")
    return Address(display_name=name, username=local, domain=_domain(field_name, domain))


def make_message_id(key: str, domain: str) -> str:
    """A Message-ID (without brackets) derived from the delivery key: retries keep it."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"{digest}@{_domain('message-id domain', domain)}"


def _message_id(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not _LOCAL_PART.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        raise InvalidHeader(f"message_id: {value!r} is not of the form id@domain (no brackets)")
    return f"<{value}>"


def _url(value: str) -> str:
    scheme = value.partition("://")[0].lower()
    if scheme not in ("https", "http"):
        raise InvalidHeader(f"unsubscribe_url: {value!r} must be an https:// URL")
    if len(value) > _URL_MAX:
        raise InvalidHeader(f"unsubscribe_url: longer than {_URL_MAX} characters")
    if not all("!" <= c <= "~" for c in value) or any(c in '<>"' for c in value):
        raise InvalidHeader(
            f"unsubscribe_url: {value!r} must be printable ASCII without spaces, quotes or <>"
        )
    return value


def _list_id(value: str) -> str:
    """The list id as a dot-atom; junk characters (e.g. from an IPv6 host) become dashes."""
    cleaned = _LIST_ID_JUNK.sub("-", value).strip(".-").replace("=?", "-")
    if not cleaned:
        raise InvalidHeader(f"list_id: {value!r} has no usable characters")
    return cleaned


def _extra_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    extra = []
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidHeader(f"headers: {name!r} is not a valid header name")
        if name.lower() in _RESERVED or name.lower() in seen:
            raise InvalidHeader(f"headers: {name!r} is set by the builder or given twice")
        seen.add(name.lower())
        extra.append((name, clean_text(value)))
    return extra


@dataclass(frozen=True)
class Envelope:
    """A message ready for SMTP: envelope addresses and the exact bytes (CRLF, 7-bit)."""

    mail_from: str
    recipient: str
    message_id: str  # without brackets
    data: bytes


_CRLF = "\r\n"
_MAX_LINE = 78  # RFC 5322's recommended limit, the email package's too
# Base64 encoded-words: binascii does the work (the default "shortest" choice measures
# every character in Python, which costs more than the rest of the message).
_UTF8 = Charset("utf-8")
_UTF8.header_encoding = BASE64


def _header(name: str, value: str) -> str:
    """One header line, RFC 2047-encoded when not ASCII, folded under 78 characters."""
    if value.isascii() and len(name) + 2 + len(value) <= _MAX_LINE:
        return f"{name}: {value}{_CRLF}"  # what Header gives too, without its cost
    return _encoded_header(name, value)


@lru_cache(maxsize=4096)  # subjects repeat from lead to lead; encoding them costs ~0.1 ms
def _encoded_header(name: str, value: str) -> str:
    charset = "us-ascii" if value.isascii() else _UTF8
    encoded = Header(value, charset, header_name=name).encode(linesep=_CRLF)
    return f"{name}: {encoded}{_CRLF}"


def _address(address: Address) -> str:
    return formataddr((address.display_name, address.addr_spec), charset=_UTF8)


# Encoded lines by their text. binascii encodes about 100 MB/s, 0.1 ms for a typical
# email's two parts; most lines come from the template and recur in every email.
_QP_LINES: dict[str, bytes] = {}
_QP_LINES_MAX = 50_000  # then start again: lines holding one lead's links pile up


def _qp(text: str) -> bytes:
    """Quoted-printable in C (binascii): short 7-bit lines, CRLF endings.

    Line by line, each with its CRLF, which encodes exactly as the whole text does
    (quoted-printable never carries anything across a line break).
    """
    lines = _QP_LINES
    parts = []
    for line in text.splitlines():
        encoded = lines.get(line)
        if encoded is None:
            encoded = binascii.b2a_qp((line + _CRLF).encode("utf-8"), quotetabs=False, istext=True)
            if len(lines) >= _QP_LINES_MAX:
                lines.clear()
            lines[line] = encoded
        parts.append(encoded)
    return b"".join(parts) if parts else b"\r\n"


def build(email: OutgoingEmail) -> Envelope:
    """The multipart/alternative message (text, then HTML) with all list headers.

    Built directly as bytes from the standard library's encoders: the email package's
    object model costs milliseconds per message, and this runs once per email sent.
    """
    if email.date.tzinfo is None or email.date.utcoffset() is None:
        raise MessageError("date: must be timezone-aware")
    sender = parse_address("from_email", email.from_email, email.from_name)
    recipient = parse_address("to_email", email.to_email, email.to_name)
    reply_to = parse_address("reply_to", email.reply_to) if email.reply_to else None
    unsubscribe = [f"<{_url(email.unsubscribe_url)}>"] if email.unsubscribe_url else []
    if email.unsubscribe_mailto:
        mailbox = parse_address("unsubscribe_mailto", email.unsubscribe_mailto).addr_spec
        unsubscribe.append(f"<mailto:{mailbox}?subject=unsubscribe>")
    # RFC 2919 names the list in a phrase: quotes and brackets there would confuse parsers.
    list_name = clean_text(re.sub(r'[<>"\\]', " ", email.list_name))
    list_id = f"<{_list_id(email.list_id)}>"
    message_id = _message_id(email.message_id)
    # "=_" never occurs in quoted-printable output, so the boundary cannot clash.
    boundary = "=_" + hashlib.sha256(message_id.encode()).hexdigest()[:24]

    head = [
        f"Message-ID: {message_id}{_CRLF}",
        f"Date: {format_datetime(email.date)}{_CRLF}",
        _header("From", _address(sender))
        if not sender.display_name.isascii()
        else f"From: {_address(sender)}{_CRLF}",
        f"To: {_address(recipient)}{_CRLF}",
    ]
    if reply_to is not None:
        head.append(f"Reply-To: {_address(reply_to)}{_CRLF}")
    head.append(_header("Subject", clean_text(email.subject)))
    if list_name:
        name = list_name if list_name.isascii() else Header(list_name, _UTF8).encode()
        head.append(f"List-Id: {name} {list_id}{_CRLF}")
    else:
        head.append(f"List-Id: {list_id}{_CRLF}")
    if unsubscribe:
        unsubscribe_line = f"List-Unsubscribe: {', '.join(unsubscribe)}"
        if len(unsubscribe_line) > 78:  # fold only between the <...> items, never inside a URL
            unsubscribe_line = f"List-Unsubscribe: {(',' + _CRLF + ' ').join(unsubscribe)}"
        head.append(unsubscribe_line + _CRLF)
    if email.unsubscribe_url and email.unsubscribe_url.lower().startswith("https://"):
        # RFC 8058 one-click unsubscribe is defined for HTTPS links only.
        head.append(f"List-Unsubscribe-Post: List-Unsubscribe=One-Click{_CRLF}")
    for name, value in _extra_headers(email.headers):
        head.append(_header(name, value))
    head.append(f"MIME-Version: 1.0{_CRLF}")
    head.append(f'Content-Type: multipart/alternative; boundary="{boundary}"{_CRLF}')

    def part(subtype: str, body: str) -> bytes:
        # The CRLF before each boundary belongs to the boundary, so the body keeps its own.
        return (
            (
                f"--{boundary}{_CRLF}"
                f'Content-Type: text/{subtype}; charset="utf-8"{_CRLF}'
                f"Content-Transfer-Encoding: quoted-printable{_CRLF}{_CRLF}"
            ).encode("ascii")
            + _qp(body)
            + _CRLF.encode()
        )

    data = b"".join(
        (
            "".join(head).encode("ascii"),
            _CRLF.encode(),
            part("plain", email.text),
            part("html", email.html),
            f"--{boundary}--{_CRLF}".encode("ascii"),
        )
    )
    return Envelope(sender.addr_spec, recipient.addr_spec, email.message_id, data)


def build_message(email: OutgoingEmail) -> EmailMessage:
    """The same message, parsed back into an `EmailMessage` (previews, tests)."""
    parsed = message_from_bytes(build(email).data, _class=EmailMessage, policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def envelope_of(message: EmailMessage) -> Envelope:
    """An `EmailMessage` made elsewhere, as an `Envelope` (its From and single To)."""
    recipients = [a for _, a in getaddresses(message.get_all("To", []) + message.get_all("Cc", []))]
    if len(recipients) != 1:
        raise MessageError(f"a message must have exactly one recipient, not {recipients}")
    froms = [a for _, a in getaddresses(message.get_all("From", []))]
    message_id = str(message.get("Message-ID", "")).strip().strip("<>")
    return Envelope(froms[0] if froms else "", recipients[0], message_id, serialize(message))


def serialize(message: EmailMessage) -> bytes:
    """The message as SMTP wants it: 7-bit headers, CRLF line endings."""
    return message.as_bytes(policy=POLICY)
