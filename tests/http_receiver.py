"""A real HTTP server on 127.0.0.1 for tests: a webhook receiver that checks signatures.

    with HttpReceiver(secret=SECRET) as receiver:
        receiver.script(500, 500, Answer(200))       # then `receiver.default`
        ...post to receiver.url...
        assert receiver.requests[0].signature_ok

Every request is recorded (method, path, headers, body) before it is answered, with
two checks done by the `standardwebhooks` package: `signature_ok` (the signature
matches the id, timestamp and body, whatever the timestamp) and `verified` (the
package's full `verify`, which also wants the timestamp within 5 minutes of the real
clock: true only for pushes stamped with the real time). A `strict` receiver answers
400 to a request that fails that verification, as a Standard Webhooks receiver does.

Answers are scripted: `script(...)` queues answers used one per request, then
`default` answers. An `Answer` (or `receiver.answer(...)`) may carry headers
(`Location`, `Retry-After`) and a `delay` before answering, for client timeouts.
Use in a test module with `pytest_plugins = ["http_receiver"]` for the
`http_receiver` and `http_receiver_factory` fixtures (import this module only under
TYPE_CHECKING there, or pytest cannot rewrite its asserts).
"""

from __future__ import annotations

import base64
import hmac
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HOST = "127.0.0.1"
PATH = "/hooks/crm"
TEST_WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the specification's test key


@dataclass(frozen=True)
class Answer:
    """What the receiver answers to one request."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0  # seconds to wait before answering


@dataclass(frozen=True)
class Request:
    """One request as it arrived, the checks made on it, and the status answered."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    status: int
    signature_ok: bool
    verified: bool
    error: str | None  # why the signature or the verification failed

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    @property
    def timestamp(self) -> int | None:
        value = self.headers.get("webhook-timestamp", "")
        return int(value) if value.isdigit() else None


class HttpReceiver:
    """A threaded `http.server` on a free port of 127.0.0.1; use as a context manager."""

    def __init__(self, secret: str | None = TEST_WEBHOOK_SECRET, strict: bool = False) -> None:
        self.secret = secret
        self.strict = strict
        self.default = Answer(200)
        self.lock = threading.Lock()
        self._script: list[Answer] = []
        self._requests: list[Request] = []
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((HOST, 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- running -----------------------------------------------------------------

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, cutting short any delayed answer; stopping twice is harmless."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def path(self) -> str:
        return PATH

    @property
    def url(self) -> str:
        """The webhook endpoint: `PATH` on this server."""
        return self.base_url + PATH

    # --- scripting ---------------------------------------------------------------

    @staticmethod
    def answer(
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        delay: float = 0.0,
    ) -> Answer:
        """An Answer, for modules that reach this one only through the fixture."""
        return Answer(status, dict(headers or {}), body, delay)

    def script(self, *answers: Answer | int) -> None:
        """Answer the next requests with these (status codes or Answers), in order."""
        with self.lock:
            self._script.extend(a if isinstance(a, Answer) else Answer(a) for a in answers)

    def _next_answer(self) -> Answer:
        with self.lock:
            return self._script.pop(0) if self._script else self.default

    # --- what arrived --------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self.lock:
            return list(self._requests)

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    def accepted_ids(self) -> list[str]:
        """The webhook-id of each request answered 2xx, in order (repeats kept)."""
        return [r.webhook_id or "" for r in self.requests if 200 <= r.status < 300]

    def _record(self, request: Request) -> None:
        with self.lock:
            self._requests.append(request)

    def check(self, headers: Mapping[str, str], body: bytes) -> tuple[bool, bool, str | None]:
        """(signature_ok, verified, error) for one request, by the `standardwebhooks` package."""
        if self.secret is None:
            return False, False, "the receiver has no secret"
        webhook = Webhook(self.secret)
        msg_id = headers.get("webhook-id")
        stamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature")
        if not (msg_id and stamp.isdigit() and signatures):
            return False, False, "missing or malformed webhook headers"
        signature_ok = False
        try:
            expected = webhook.sign(msg_id, datetime.fromtimestamp(int(stamp), UTC), body.decode())
            wanted = base64.b64decode(expected.split(",", 1)[1])
            signature_ok = any(
                version == "v1" and hmac.compare_digest(wanted, base64.b64decode(value))
                for version, _, value in (s.partition(",") for s in signatures.split(" "))
            )
            webhook.verify(body, dict(headers))
        except (WebhookVerificationError, ValueError) as error:  # binascii.Error is a ValueError
            return signature_ok, False, str(error)
        return signature_ok, True, None


def _handler_for(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            signature_ok, verified, error = receiver.check(headers, body)
            if receiver.strict and not verified:
                # Refused before any work: the scripted answers are kept for later requests.
                answer = Answer(400, body=(error or "verification failed").encode())
            else:
                answer = receiver._next_answer()
            receiver._record(
                Request(
                    self.command, self.path, headers, body, answer.status,
                    signature_ok, verified, error,
                )
            )  # fmt: skip
            if answer.delay:
                receiver._stopping.wait(answer.delay)
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(answer.body)
            except OSError:
                pass  # the client gave up waiting (a timeout test)
            self.close_connection = True

        do_POST = do_GET = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


@pytest.fixture
def http_receiver_factory() -> Iterator[Callable[..., HttpReceiver]]:
    """Start receivers with `http_receiver_factory(secret=..., strict=...)`; all stop after
    the test."""
    started: list[HttpReceiver] = []

    def start(**kwargs: Any) -> HttpReceiver:
        receiver = HttpReceiver(**kwargs).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def http_receiver(http_receiver_factory: Callable[..., HttpReceiver]) -> HttpReceiver:
    """A receiver answering 200, checking signatures with TEST_WEBHOOK_SECRET."""
    return http_receiver_factory()
