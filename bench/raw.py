"""The raw limit: pre-built messages pushed to the sink, no database, no rendering.

Every message (one per recipient, as the engine would send them: same template, same
size, distinct To and Message-ID) is built, serialised and dot-stuffed before the clock
starts; what is timed is only the SMTP conversation a lock-step client has for each
message (MAIL, RCPT, DATA, the data), over the same number of connections as the engine.
"""

from __future__ import annotations

import re
import smtplib
import time
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from scenario import BASE_URL, SEQUENCE_ID, TEMPLATE

from nurture.core import message as builder
from nurture.core.message import OutgoingEmail, make_message_id
from nurture.core.profile import LeadProfile
from nurture.core.rendering import EmailContext, Sender, TemplateCatalog
from nurture.mail import dot_stuffed

_PLACEHOLDER_ID = "0" * 32


@dataclass(frozen=True)
class RawRun:
    sent: int
    started: float  # time.monotonic()
    finished: float
    message_ids: frozenset[str]  # with angle brackets, as the sink reports them
    mean_bytes: int

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def _engine_bytes(email: OutgoingEmail) -> bytes:
    """The bytes the engine's own message builder makes for `email`."""
    if hasattr(builder, "build"):  # builds bytes directly
        return bytes(builder.build(email).data)
    message: EmailMessage = builder.build_message(email)
    return bytes(builder.serialize(message))


def _model(catalog: TemplateCatalog, sender: Sender, locale: str, now: datetime) -> bytes:
    lead = LeadProfile(
        email="lead0@load.example",
        first_name="Lead0",
        company="Company 0",
        country="FR",
        timezone="Europe/Paris",
        locale=locale,
    )
    link = f"{BASE_URL}/u/" + "t" * 40  # as long as a signed token
    context = EmailContext(lead, None, sender, link, SEQUENCE_ID, "story")
    rendered = catalog.render(TEMPLATE, locale, context)
    return _engine_bytes(
        OutgoingEmail(
            message_id=f"{_PLACEHOLDER_ID}@planifia.example",
            from_name=sender.name,
            from_email=sender.email,
            to_name="Lead0",
            to_email=lead.email,
            reply_to=None,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            list_id=f"{SEQUENCE_ID}.nurture.example.com",
            list_name="Delivery benchmark",
            unsubscribe_url=link,
            unsubscribe_mailto=None,
            date=now,
            headers={"X-Nurture-Delivery": "0"},
        )
    )


def build_payloads(
    catalog: TemplateCatalog, sender: Sender, count: int, now: datetime, first: int = 1
) -> list[tuple[str, bytes]]:
    """(recipient, ready-to-send data) for leads `first`..`first + count - 1`, French and
    English alternating like the seeded leads."""
    models = {loc: _model(catalog, sender, loc, now) for loc in ("en", "fr")}
    payloads = []
    for n in range(first, first + count):
        model = models["fr" if n % 2 else "en"]
        message_id = make_message_id(f"raw/{n}", "planifia.example").split("@")[0]
        data = (
            model.replace(b"lead0@load.example", f"lead{n}@load.example".encode())
            .replace(b"Lead0", f"Lead{n}".encode())
            .replace(_PLACEHOLDER_ID.encode(), message_id.encode())
        )
        payloads.append((f"lead{n}@load.example", dot_stuffed(data)))
    return payloads


def run_raw(
    host: str, port: int, sender: str, payloads: list[tuple[str, bytes]], pipelining: bool = False
) -> RawRun:
    """Send every payload over one SMTP connection and time it: in lock-step (four round
    trips a message, as the engine's mailer), or with MAIL, RCPT and DATA pipelined."""
    connection = smtplib.SMTP(host, port, timeout=30)
    connection.ehlo()
    started = time.monotonic()
    (_pipelined if pipelining else _lockstep)(connection, sender, payloads)
    finished = time.monotonic()
    connection.quit()
    return _result(payloads, started, finished)


def _lockstep(connection: smtplib.SMTP, sender: str, payloads: list[tuple[str, bytes]]) -> None:
    for recipient, data in payloads:
        code, reply = connection.mail(sender, [f"SIZE={len(data)}"])
        if code != 250:
            raise RuntimeError(f"raw: MAIL refused: {code} {reply!r}")
        code, reply = connection.rcpt(recipient)
        if code != 250:
            raise RuntimeError(f"raw: RCPT refused: {code} {reply!r}")
        connection.putcmd("data")
        code, reply = connection.getreply()
        if code != 354:
            raise RuntimeError(f"raw: DATA refused: {code} {reply!r}")
        connection.send(data)
        code, reply = connection.getreply()
        if code != 250:
            raise RuntimeError(f"raw: data refused: {code} {reply!r}")


def _pipelined(connection: smtplib.SMTP, sender: str, payloads: list[tuple[str, bytes]]) -> None:
    for recipient, data in payloads:
        envelope = f"MAIL FROM:<{sender}> SIZE={len(data)}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n"
        connection.send(envelope.encode("ascii"))
        replies = [connection.getreply()[0] for _ in range(3)]
        if replies != [250, 250, 354]:
            raise RuntimeError(f"raw: envelope refused: {replies}")
        connection.send(data)
        code, reply = connection.getreply()
        if code != 250:
            raise RuntimeError(f"raw: data refused: {code} {reply!r}")


def _result(payloads: list[tuple[str, bytes]], started: float, finished: float) -> RawRun:
    ids = frozenset(
        "<" + re.search(rb"(?im)^message-id: <([^>]+)>", data).group(1).decode() + ">"  # type: ignore[union-attr]
        for _, data in payloads
    )
    mean = sum(len(data) for _, data in payloads) // max(len(payloads), 1)
    return RawRun(len(payloads), started, finished, ids, mean)
