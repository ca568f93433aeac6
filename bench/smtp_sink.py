"""A local SMTP sink in its own process: accepts every message, counts it by Message-ID, drops it.

Two servers share the same bookkeeping:

- `aiosmtpd` (default): the aiosmtpd server the tests use, a complete SMTP server: the
  reference for "the SMTP hand-off".
- `fast`: a minimal asyncio protocol (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT,
  pipelining tolerated) that does no more per message than find the end of the data and
  the Message-ID header, at about a seventh of aiosmtpd's cost. Against it, the raw
  limit is Python's smtplib itself: it shows the engine's own ceiling.

The server runs in a child process (its own interpreter, its own GIL) and is driven from
the parent through a pipe: `SinkProcess.snapshot()` returns what arrived since the last
`reset()`. The child stops itself after `lifetime` seconds whatever happens.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

HOST = "127.0.0.1"
_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*(<[^>\r\n]*>)")
_EHLO = (
    b"250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n250 SMTPUTF8\r\n"
)


@dataclass
class _Tally:
    """What arrived since the last reset."""

    messages: int = 0
    connections: int = 0
    without_id: int = 0
    ids: set[bytes] = field(default_factory=set)
    cpu_start: float = field(default_factory=time.process_time)

    def count(self, data: bytes | bytearray) -> None:
        self.messages += 1
        end = data.find(b"\r\n\r\n")
        found = _MESSAGE_ID.search(data, 0, end if end >= 0 else len(data))
        if found is None:
            self.without_id += 1
        else:
            self.ids.add(bytes(found.group(1)))


class _FastSmtp(asyncio.Protocol):
    """Just enough SMTP to take messages from smtplib as fast as Python can."""

    def __init__(self, tally: _Tally) -> None:
        self.tally = tally
        self.buffer = bytearray()
        self.in_data = False
        self.scanned = 0  # data-mode bytes already searched for the terminator
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.tally.connections += 1
        transport.write(b"220 sink.bench ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies: list[bytes] = []
        closing = False
        while not closing:
            if self.in_data:
                if self.buffer.startswith(b".\r\n"):  # an empty message
                    end, skip = 0, 3
                else:
                    found = self.buffer.find(b"\r\n.\r\n", max(0, self.scanned - 4))
                    if found < 0:
                        self.scanned = len(self.buffer)
                        break
                    end, skip = found + 2, found + 5
                self.tally.count(self.buffer[:end])
                del self.buffer[:skip]
                self.in_data, self.scanned = False, 0
                replies.append(b"250 2.0.0 Queued\r\n")
                continue
            found = self.buffer.find(b"\r\n")
            if found < 0:
                break
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[: found + 2]
            if verb == b"EHLO":
                replies.append(_EHLO)
            elif verb == b"DATA":
                replies.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                self.in_data = True
            elif verb == b"QUIT":
                replies.append(b"221 2.0.0 Bye\r\n")
                closing = True
            elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                replies.append(b"250 2.0.0 OK\r\n")
            else:
                replies.append(b"502 5.5.2 Command not implemented\r\n")
        assert self.transport is not None
        if replies:
            self.transport.write(b"".join(replies))
        if closing:
            self.transport.close()


class _AiosmtpdHandler:
    def __init__(self, tally: _Tally) -> None:
        self.tally = tally

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.tally.count(bytes(envelope.original_content or b""))
        return "250 2.0.0 Queued"


def _serve(kind: str, control: Connection, lifetime: float) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    tally = _Tally()
    if kind == "fast":

        def factory() -> asyncio.Protocol:
            return _FastSmtp(tally)

    else:
        from aiosmtpd.smtp import SMTP

        handler = _AiosmtpdHandler(tally)

        class _CountingSmtp(SMTP):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                tally.connections += 1
                super().connection_made(transport)

        def factory() -> asyncio.Protocol:
            return _CountingSmtp(handler, hostname="sink.bench", data_size_limit=None)

    server = loop.run_until_complete(loop.create_server(factory, HOST, 0))
    control.send(("ready", server.sockets[0].getsockname()[1]))

    def on_command() -> None:
        nonlocal tally
        try:
            command = control.recv()
        except EOFError:  # the parent is gone
            loop.stop()
            return
        if command == "snapshot":
            cpu = time.process_time() - tally.cpu_start
            control.send((tally.messages, tally.connections, tally.without_id, tally.ids, cpu))
        elif command == "reset":
            fresh = _Tally()
            tally.__dict__.update(fresh.__dict__)  # protocols hold the same object
            control.send("ok")
        elif command == "stop":
            control.send("ok")
            loop.stop()

    loop.add_reader(control.fileno(), on_command)
    loop.call_later(lifetime, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()


@dataclass(frozen=True)
class Arrivals:
    """What the sink received, and the CPU time the sink process used meanwhile."""

    messages: int
    connections: int
    without_id: int
    ids: frozenset[str]
    cpu_seconds: float


class SinkProcess:
    """Start with `with SinkProcess("fast") as sink:`; `sink.url` is its smtp:// URL."""

    def __init__(self, kind: str = "fast", lifetime: float = 6 * 3600) -> None:
        if kind not in ("fast", "aiosmtpd"):
            raise ValueError(f"unknown sink {kind!r} (fast or aiosmtpd)")
        self.kind = kind
        context = multiprocessing.get_context("spawn")  # a clean interpreter: no shared state
        self._control, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(kind, child, lifetime), name=f"smtp-sink-{kind}", daemon=True
        )
        self.port = 0

    def __enter__(self) -> SinkProcess:
        self._process.start()
        if not self._control.poll(30):
            self._process.kill()
            raise RuntimeError("the SMTP sink did not start within 30 s")
        _, self.port = self._control.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._process.is_alive():
                self._control.send("stop")
                self._control.poll(10)
        except (BrokenPipeError, EOFError, OSError):
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)

    @property
    def pid(self) -> int:
        return int(self._process.pid or 0)

    @property
    def url(self) -> str:
        return f"smtp://{HOST}:{self.port}"

    def _ask(self, command: str) -> Any:
        self._control.send(command)
        if not self._control.poll(120):
            raise RuntimeError(f"the SMTP sink did not answer {command!r}")
        return self._control.recv()

    def reset(self) -> None:
        self._ask("reset")

    def snapshot(self) -> Arrivals:
        messages, connections, without_id, ids, cpu = self._ask("snapshot")
        decoded = frozenset(i.decode("ascii", "replace") for i in ids)
        return Arrivals(messages, connections, without_id, decoded, cpu)
