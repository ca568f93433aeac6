"""Hand built messages to the outside world: SMTP, an outbox folder, or memory.

Each `send` returns what happened as a value, so the dispatcher can decide:

- `Sent` — the server took responsibility for the message.
- `RetryLater` — nothing was accepted (network trouble before the end of the data, a 4xx,
  or the session could not be set up): safe to send again later.
- `Rejected` — a 5xx to MAIL, RCPT or DATA; `bounce` says the address itself is bad.
- `Uncertain` — the data went out but the final reply never came: the server may have
  accepted it, so it must not be resent blindly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import smtplib
import ssl
import tempfile
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Protocol, TypeAlias
from urllib.parse import parse_qsl, unquote, urlsplit

from nurture import redaction
from nurture.core.message import Envelope, InvalidAddress, envelope_of, parse_address

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    """The server accepted the message; `reply` is its answer (often with a queue id)."""

    reply: str = field(default="", compare=False)


@dataclass(frozen=True)
class RetryLater:
    """Not accepted, and safe to try again: nothing was delivered.

    `relay_down`: the relay itself is unavailable (no connection, or 421 "service not
    available"), so every other message would meet the same answer: the dispatcher
    pauses sending instead of spending each message's attempts.
    """

    reason: str
    relay_down: bool = False


@dataclass(frozen=True)
class Rejected:
    """Refused for good (5xx); `bounce` is true when the recipient address is bad."""

    reason: str
    code: int
    bounce: bool = False


@dataclass(frozen=True)
class Uncertain:
    """The connection failed after the data was sent: maybe delivered, never resend blindly.

    `last_reply`: the relay's last answer on that connection (the previous message's
    queue id, say), to find this one in the relay's logs.
    """

    reason: str
    last_reply: str = field(default="", compare=False)


SendResult: TypeAlias = Sent | RetryLater | Rejected | Uncertain


class Mailer(Protocol):
    """Where messages go. One instance per worker thread."""

    def send(self, message: Envelope | EmailMessage) -> SendResult: ...

    def close(self) -> None: ...


# --- SMTP ------------------------------------------------------------------------

_TRUE = ("true", "required", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_OPTIONS = ("starttls", "helo", "envelope_from")
_HELO = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f.:]+\]")
# Enhanced status codes that mean the mailbox does not exist or is disabled (RFC 3463).
_BAD_MAILBOX = re.compile(r"5\.1\.\d+|5\.2\.1")


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to connect, parsed from an SMTP URL."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    helo: str | None = None
    envelope_from: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        """Parse `smtp://[user:pass@]host[:port][?starttls=true&helo=..&envelope_from=..]`
        or `smtps://...`; raises ValueError saying what is wrong (password masked)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise ValueError(f"SMTP URL {redaction.url(url)!r}: {_port_problem(error)}") from None

        def bad(problem: str) -> ValueError:
            return ValueError(f"SMTP URL {redaction.url(url)!r}: {problem}")

        if parts.scheme not in ("smtp", "smtps"):
            raise bad(f"scheme must be smtp:// or smtps://, not {parts.scheme + '://'!r}")
        if not parts.hostname:
            raise bad("missing host name (smtp://host:port)")
        if parts.path not in ("", "/") or parts.fragment:
            raise bad("unexpected path or fragment after the host")
        if port == 0:
            raise bad("port must be a number from 1 to 65535")
        options: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in _OPTIONS:
                raise bad(f"unknown option {key!r} (known: {', '.join(_OPTIONS)})")
            if key in options:
                raise bad(f"option {key!r} given twice")
            options[key] = value
        starttls = options.get("starttls", "false").lower()
        if starttls not in _TRUE + _FALSE:
            raise bad(f"starttls must be true, required or false, not {starttls!r}")
        implicit_tls = parts.scheme == "smtps"
        if implicit_tls and starttls in _TRUE:
            raise bad("starttls applies to smtp://; smtps:// is already encrypted")
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        if (username is None) != (password is None) or username == "":
            raise bad("credentials need both a user and a password (smtp://user:password@host)")
        if not (username or "").isascii() or not (password or "").isascii():
            # smtplib sends AUTH credentials as ASCII only.
            raise bad("user and password must be ASCII (percent-encoded as needed)")
        helo = options.get("helo")
        if helo is not None and not _HELO.fullmatch(helo):
            raise bad(f"helo must be a host name, not {helo!r}")
        envelope_from = options.get("envelope_from")
        if envelope_from is not None:
            try:
                envelope_from = parse_address("envelope_from", envelope_from).addr_spec
            except InvalidAddress as error:
                raise bad(str(error)) from None
        default_port = 465 if implicit_tls else 587 if starttls in _TRUE else 25
        return cls(
            host=parts.hostname,
            port=port or default_port,
            implicit_tls=implicit_tls,
            starttls=starttls in _TRUE,
            username=username,
            password=password,
            helo=helo,
            envelope_from=envelope_from,
        )


def _port_problem(error: ValueError) -> str:
    text = str(error)
    return "port must be a number from 1 to 65535" if "ort" in text else text


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())


def _refusal(phase: str, code: int, reply: bytes | str) -> RetryLater | Rejected:
    """A non-2xx reply to MAIL, RCPT or DATA, as an outcome."""
    text = _reply_text(reply)
    reason = f"{phase} refused: {code} {text}"
    if not 500 <= code < 600:
        # 421: the service is closing the channel, whatever the message (RFC 5321 3.8).
        return RetryLater(reason, relay_down=code == 421)
    enhanced = text.split(" ", 1)[0]
    if re.fullmatch(r"\d\.\d{1,3}\.\d{1,3}", enhanced):
        bounce = phase == "RCPT TO" and bool(_BAD_MAILBOX.fullmatch(enhanced))
    else:
        bounce = phase == "RCPT TO" and code in (550, 551, 553)
    return Rejected(reason, code, bounce=bounce)


def dot_stuffed(payload: bytes) -> bytes:
    r"""Dot-stuffing (RFC 5321 4.5.2), plus the end-of-data marker.

    A period opening a line is doubled: after every LF, and at the very start (what
    `re.sub(rb"(?m)^\.", …)` does, five times faster on an 11 KB message, on the thread
    that owns the SMTP connection).
    """
    stuffed = payload.replace(b"\n.", b"\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


class SmtpMailer:
    """Sends over one SMTP connection kept open between messages.

    Not thread-safe: give each worker thread its own instance. The connection opens
    on the first `send`, and is reopened when the server closed it while idle. After
    a failed connection set-up, sends answer `RetryLater` at once for `cooldown`
    seconds, so a batch does not wait out one timeout per message on a dead server.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 30,
        ssl_context: ssl.SSLContext | None = None,
        cooldown: float = 10,
    ) -> None:
        self.target = SmtpTarget.from_url(url)
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.cooldown = cooldown
        self._connection: smtplib.SMTP | None = None
        self._failed: tuple[float, RetryLater] | None = None  # (monotonic time, outcome)
        self._last_reply = ""  # the relay's last 2xx answer to a message's data

    def send(self, message: Envelope | EmailMessage) -> SendResult:
        envelope = message if isinstance(message, Envelope) else envelope_of(message)
        sender = self.target.envelope_from or envelope.mail_from
        payload = envelope.data

        for _ in range(2):
            fresh = self._connection is None
            opened = self._connect()
            if isinstance(opened, RetryLater):
                return opened
            try:
                options = [f"SIZE={len(payload)}"] if opened.has_extn("size") else []
                code, reply = opened.mail(sender, options)
            except (smtplib.SMTPException, OSError) as error:
                self._drop()
                if fresh:
                    return RetryLater(f"connection lost at MAIL FROM: {error}", relay_down=True)
                log.info("SMTP server closed the idle connection; reconnecting")
                continue
            if code == 421 and not fresh:  # an idle-timeout notice, read late: reconnect
                self._drop()
                continue
            break
        else:
            return RetryLater(
                "SMTP server keeps closing the connection at MAIL FROM", relay_down=True
            )
        if code // 100 != 2:
            return self._abort("MAIL FROM", code, reply)
        return self._recipient_and_data(opened, envelope.recipient, payload)

    def _recipient_and_data(
        self, connection: smtplib.SMTP, recipient: str, payload: bytes
    ) -> SendResult:
        try:
            code, reply = connection.rcpt(recipient)
            if code // 100 != 2:
                return self._abort("RCPT TO", code, reply)
            connection.putcmd("data")
            code, reply = connection.getreply()
            if code != 354:
                return self._abort("DATA", code, reply)
            # Up to here nothing can have been accepted: the end-of-data marker is last.
            connection.send(dot_stuffed(payload))
        except (smtplib.SMTPException, OSError) as error:
            self._drop()
            return RetryLater(f"connection lost before the end of the data: {error}")
        try:
            code, reply = connection.getreply()
        except (smtplib.SMTPException, OSError) as error:
            self._drop()
            return Uncertain(f"no reply after the data was sent: {error}", self._last_reply)
        if code // 100 == 2:
            self._last_reply = f"{code} {_reply_text(reply)}"[:500]
            return Sent(self._last_reply)
        if code == 421:
            self._drop()
        if code // 100 in (4, 5):
            return _refusal("DATA", code, reply)
        self._drop()
        return Uncertain(
            f"unexpected reply after the data: {code} {_reply_text(reply)}", self._last_reply
        )

    def _abort(self, phase: str, code: int, reply: bytes) -> RetryLater | Rejected:
        """End a refused transaction so the connection can carry the next message."""
        if code == 421:
            self._drop()
        elif self._connection is not None:
            try:
                self._connection.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()
        return _refusal(phase, code, reply)

    def _connect(self) -> smtplib.SMTP | RetryLater:
        if self._connection is not None:
            return self._connection
        if self._failed is not None and time.monotonic() - self._failed[0] < self.cooldown:
            return self._failed[1]
        opened = self._open()
        self._failed = (time.monotonic(), opened) if isinstance(opened, RetryLater) else None
        return opened

    def _open(self) -> smtplib.SMTP | RetryLater:
        target = self.target
        where = f"{target.host}:{target.port}"
        connection: smtplib.SMTP | None = None
        step = "connect"
        try:
            if target.implicit_tls:
                connection = smtplib.SMTP_SSL(
                    target.host,
                    target.port,
                    local_hostname=target.helo,
                    timeout=self.timeout,
                    context=self.ssl_context,
                )
            else:
                connection = smtplib.SMTP(
                    target.host, target.port, local_hostname=target.helo, timeout=self.timeout
                )
            step = "EHLO"
            connection.ehlo_or_helo_if_needed()
            if target.starttls:
                step = "STARTTLS"
                connection.starttls(context=self.ssl_context)
                connection.ehlo()
            if target.username is not None and target.password is not None:
                step = "AUTH"
                connection.login(target.username, target.password)
        except smtplib.SMTPResponseException as error:
            _close_quietly(connection)
            reason = (
                f"{step} with {where} refused: {error.smtp_code} {_reply_text(error.smtp_error)}"
            )
            log.warning("SMTP: %s", reason)
            return RetryLater(reason, relay_down=True)
        except (smtplib.SMTPException, OSError) as error:
            _close_quietly(connection)
            reason = f"{step} with {where} failed: {error}"
            log.warning("SMTP: %s", reason)
            return RetryLater(reason, relay_down=True)
        log.debug("SMTP: connected to %s", where)
        self._connection = connection
        return connection

    def _drop(self) -> None:
        _close_quietly(self._connection)
        self._connection = None

    def close(self) -> None:
        """Say QUIT and close; the next `send` would open a new connection."""
        if self._connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._connection.quit()
        self._drop()


def _close_quietly(connection: smtplib.SMTP | None) -> None:
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.close()


# --- outbox folder -----------------------------------------------------------------

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._@+-]")


class OutboxMailer:
    """Writes each message to `<folder>/<Message-ID>.eml`; the same ID overwrites."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path_for(self, message: Envelope | EmailMessage) -> Path:
        envelope = message if isinstance(message, Envelope) else envelope_of(message)
        return self.path_of(envelope.message_id)

    def path_of(self, message_id: str) -> Path:
        name = _UNSAFE_NAME.sub("_", message_id)[:200].lstrip(".")
        return self.folder / f"{name or 'no-message-id'}.eml"

    def send(self, message: Envelope | EmailMessage) -> SendResult:
        envelope = message if isinstance(message, Envelope) else envelope_of(message)
        target = self.path_for(envelope)
        data = envelope.data
        temp: str | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Write aside then rename, so a reader never sees half a message.
            handle, temp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except OSError as error:
            if temp is not None and os.path.exists(temp):
                os.unlink(temp)
            return RetryLater(f"cannot write {target}: {error}")
        return Sent()

    def close(self) -> None:
        """Nothing to release."""


# --- memory ------------------------------------------------------------------------


class MemoryMailer:
    """Keeps messages in a list; `results` scripts the outcomes (then `Sent`)."""

    def __init__(self, results: Iterable[SendResult] = ()) -> None:
        self.messages: list[EmailMessage] = []  # those that were Sent
        self.attempts: list[tuple[EmailMessage, SendResult]] = []
        self.closed = False
        self._script: deque[SendResult] = deque(results)

    def script(self, *results: SendResult) -> None:
        """Queue outcomes for the next sends."""
        self._script.extend(results)

    def send(self, message: Envelope | EmailMessage) -> SendResult:
        envelope = message if isinstance(message, Envelope) else envelope_of(message)
        # Keep what a receiver would parse, so tests read headers and parts as delivered.
        message = message_from_bytes(envelope.data, _class=EmailMessage, policy=default)
        result = self._script.popleft() if self._script else Sent()
        self.attempts.append((message, result))
        if isinstance(result, Sent):
            self.messages.append(message)
        return result

    def close(self) -> None:
        self.closed = True


def mailer_from_settings(smtp_url: str | None, outbox_dir: Path) -> Mailer:
    """SMTP when a URL is configured (checked now, connected on first send), else outbox."""
    if smtp_url:
        return SmtpMailer(smtp_url)
    return OutboxMailer(outbox_dir)
