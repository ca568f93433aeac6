"""A real SMTP server on 127.0.0.1 for tests, with faults to inject on demand.

    with SmtpTestServer(reject_rcpt={"gone@example.com"}) as server:
        mailer = SmtpMailer(server.url)
        ...
        assert server.messages[0]["Subject"] == "Hello"

Faults (attributes, changeable while running): `reject_rcpt` answers 550 to RCPT for
those addresses, `tempfail_mail` answers 451 to the next N MAIL FROM, `drop_after_data`
closes the connection after the data arrives without replying, `stall_after_data`
waits that many seconds before replying (for client timeouts), `unavailable` answers
421 to every MAIL FROM (a relay out of service). `auth=(user, password)`
requires AUTH (plain text allowed for tests). `tls_context` offers STARTTLS;
`implicit_tls_context` makes the whole connection TLS (smtps).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One message as the server got it."""

    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    user: str | None  # the AUTH login, if any


class _Handler:
    def __init__(self, server: SmtpTestServer) -> None:
        self.server = server

    async def handle_MAIL(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.server.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if self.server.unavailable:
            return "421 4.3.2 Service not available, closing transmission channel"
        with self.server.lock:
            if self.server.tempfail_mail > 0:
                self.server.tempfail_mail -= 1
                return "451 4.3.0 Try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in {a.lower() for a in self.server.reject_rcpt}:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        login = session.auth_data.login.decode() if session.auth_data else None
        received = Received(
            mail_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            raw=raw,
            message=message_from_bytes(raw, _class=EmailMessage, policy=default),
            user=login,
        )
        with self.server.lock:
            self.server._received.append(received)
        if self.server.stall_after_data:
            await asyncio.sleep(self.server.stall_after_data)
        if self.server.drop_after_data and smtp.transport is not None:
            smtp.transport.abort()  # the message is here, but the client never hears so
        return "250 2.0.0 Accepted"


class _CountingSMTP(SMTP):
    """The aiosmtpd protocol, counting and remembering each connection."""

    def __init__(self, server: SmtpTestServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._test_server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS calls this again on the same connection
        super().connection_made(transport)
        if first:
            with self._test_server.lock:
                self._test_server.connections += 1
                self._test_server._live.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        with self._test_server.lock:
            self._test_server._live.discard(self)
        super().connection_lost(error)


class _Controller(Controller):
    """Listens on a port chosen by the system, so parallel tests never collide."""

    def __init__(self, server: SmtpTestServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, hostname=HOST, port=0, **kwargs)
        self._test_server = server

    def factory(self) -> SMTP:
        return _CountingSMTP(self._test_server, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpTestServer:
    """An aiosmtpd server in a thread; use as a context manager."""

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        reject_rcpt: set[str] | frozenset[str] = frozenset(),
        tempfail_mail: int = 0,
        drop_after_data: bool = False,
        stall_after_data: float = 0,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.auth = auth
        self.reject_rcpt = set(reject_rcpt)
        self.tempfail_mail = tempfail_mail
        self.drop_after_data = drop_after_data
        self.stall_after_data = stall_after_data
        self.unavailable = False  # answer 421 to every MAIL FROM, as a relay in trouble
        self.implicit_tls = implicit_tls_context is not None
        self.lock = threading.Lock()
        self.connections = 0
        self._received: list[Received] = []
        self._live: set[_CountingSMTP] = set()
        self._running = False
        kwargs: dict[str, Any] = {"server_hostname": "smtp.test", "ready_timeout": 10}
        if auth is not None:
            # AUTH is enforced at MAIL FROM (aiosmtpd warns when its own check runs without TLS).
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        if tls_context is not None:
            kwargs["tls_context"] = tls_context
        if implicit_tls_context is not None:
            kwargs["ssl_context"] = implicit_tls_context
        self._controller = _Controller(self, _Handler(self), **kwargs)

    def _authenticate(
        self, smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.auth is not None
            and (data.login.decode(), data.password.decode()) == self.auth
        )
        return AuthResult(success=ok, auth_data=data if ok else None, handled=False)

    # --- running -----------------------------------------------------------------

    def start(self) -> SmtpTestServer:
        self._controller.start()
        self._running = True
        with self.lock:
            self.connections = 0  # the controller's own readiness probe does not count
        return self

    def stop(self) -> None:
        """Stop listening; stopping twice is harmless."""
        if self._running:
            self._running = False
            self._controller.stop()

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def url(self) -> str:
        """An SMTP URL for this server, with the credentials when AUTH is on."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        if self.auth is None:
            return f"{scheme}://{HOST}:{self.port}"
        user, password = (quote(part, safe="") for part in self.auth)
        return f"{scheme}://{user}:{password}@{HOST}:{self.port}"

    # --- what arrived ----------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self.lock:
            return list(self._received)

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]

    def close_connections(self) -> None:
        """Close every open client connection from the server side, as an idle timeout does."""
        with self.lock:
            live = list(self._live)
        done = threading.Event()

        def close_all() -> None:
            for protocol in live:
                if protocol.transport is not None:
                    protocol.transport.close()
            done.set()

        self._controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a throwaway certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = self_signed_certificate(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., SmtpTestServer]]:
    """Start servers with `smtp_server_factory(**faults)`; all are stopped after the test."""
    started: list[SmtpTestServer] = []

    def start(**kwargs: Any) -> SmtpTestServer:
        server = SmtpTestServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., SmtpTestServer]) -> SmtpTestServer:
    """A plain SMTP server on 127.0.0.1 without faults."""
    return smtp_server_factory()
