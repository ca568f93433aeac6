"""The demo's CRM: a webhook receiver on 127.0.0.1 that checks every push's signature.

`nurture demo` points a CRM pusher of its own at it, so promotions leave by the real
path (the outbox, Standard Webhooks signatures, an HTTP POST, retries) and never reach
the CRM the installation may be configured with. What it received comes back as plain
values, stamped with the simulated time each push left (its `webhook-timestamp`).
"""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

from nurture.crm import generate_secret

PATH = "/crm/webhooks"


@dataclass(frozen=True)
class Push:
    """One push the CRM took: what happened to which promotion, and when it left."""

    kind: str  # lead.promoted, lead.escalated, lead.reassigned
    promotion_id: int
    cycle: int
    reason: str
    rep_email: str | None
    lead_email: str
    escalation: int  # how many times the SLA was missed (0: the promotion itself)
    at: datetime


class DemoCrm:
    """A threaded HTTP server on a free port; `close` stops it."""

    def __init__(self) -> None:
        self.secret = generate_secret()
        self._signer = Webhook(self.secret)
        self._lock = threading.Lock()
        self._taken: list[Push] = []
        self._ids: set[str] = set()  # delivery is at least once: a repeat is answered, not kept
        self.refused = 0  # pushes whose signature did not match
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 204 if crm._receive(self.path, dict(self.headers.items()), body) else 400
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a CRM's access log is not the demo's output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="nurture-demo-crm", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{PATH}"

    def take(self) -> list[Push]:
        """The pushes received since the last call, in the order they arrived."""
        with self._lock:
            taken, self._taken = self._taken, []
        return taken

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _receive(self, path: str, headers: dict[str, str], body: bytes) -> bool:
        named = {name.lower(): value for name, value in headers.items()}
        webhook_id = named.get("webhook-id", "")
        stamp = named.get("webhook-timestamp", "")
        if path != PATH or not stamp.isdigit() or not self._signed(named, webhook_id, stamp, body):
            with self._lock:
                self.refused += 1
            return False
        envelope = json.loads(body)
        data = envelope["data"]
        promotion = data["promotion"]
        push = Push(
            kind=envelope["type"],
            promotion_id=int(promotion["id"]),
            cycle=int(promotion["cycle"]),
            reason=str(promotion["reason"]),
            rep_email=(data.get("rep") or {}).get("email"),
            lead_email=str(data["lead"]["email"]),
            escalation=int((data.get("escalation") or {}).get("count") or 0),
            at=datetime.fromtimestamp(int(stamp), UTC),
        )
        with self._lock:
            if webhook_id not in self._ids:
                self._ids.add(webhook_id)
                self._taken.append(push)
        return True

    def _signed(self, headers: dict[str, str], webhook_id: str, stamp: str, body: bytes) -> bool:
        """The signature matches the id, timestamp and body. The package's own `verify`
        also wants the timestamp within five minutes of the wall clock, and these
        pushes carry the simulated time they left."""
        at = datetime.fromtimestamp(int(stamp), UTC)
        expected = self._signer.sign(webhook_id, at, body.decode("utf-8"))
        given = headers.get("webhook-signature", "").split()
        return any(hmac.compare_digest(signature, expected) for signature in given)
