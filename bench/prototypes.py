"""Changes the engine could make, tried from the outside to measure them (`--prototype`).

None of this is the engine's code; each prototype is the smallest stand-in for a change
worth measuring, good enough for the benchmark's happy path:

- `smtp-pipelining`: MAIL, RCPT and DATA sent in one write (RFC 2920): two round trips
  per message instead of four. The raw limit then
  uses the same conversation, so it stays the limit of the engine's client. Only servers
  that announce PIPELINING get it: the minimal sink does (`--sink fast`), aiosmtpd does
  not.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

from nurture.mail import (
    Rejected,
    RetryLater,
    SendResult,
    Sent,
    SmtpMailer,
    Uncertain,
    dot_stuffed,
)

NAMES = ("smtp-pipelining",)


def _code_text(reply: tuple[int, bytes]) -> str:
    return f"{reply[0]} {reply[1].decode('utf-8', 'replace')}"


class PipeliningSmtpMailer(SmtpMailer):
    """`SmtpMailer` with the envelope commands pipelined when the server offers it.

    A prototype: on a refusal it answers like the engine would, but it does not retry a
    connection the server closed while idle (the engine's mailer does).
    """

    def send(self, message: Any) -> SendResult:
        envelope = message
        if isinstance(message, EmailMessage):  # pragma: no cover - the engine sends bytes
            return super().send(message)
        connection = self._connect()
        if isinstance(connection, RetryLater):
            return connection
        if not connection.has_extn("pipelining"):
            return super().send(message)
        sender = self.target.envelope_from or envelope.mail_from
        size = f" SIZE={len(envelope.data)}" if connection.has_extn("size") else ""
        commands = f"MAIL FROM:<{sender}>{size}\r\nRCPT TO:<{envelope.recipient}>\r\nDATA\r\n"
        try:
            connection.send(commands.encode("ascii"))
            mail, rcpt, data = (connection.getreply() for _ in range(3))
        except (smtplib.SMTPException, OSError) as error:
            self._drop()
            return RetryLater(f"connection lost before the data: {error}")
        for phase, reply in (("MAIL FROM", mail), ("RCPT TO", rcpt)):
            if reply[0] // 100 != 2:
                self._end_transaction(data)
                bounce = phase == "RCPT TO" and reply[0] in (550, 551, 553)
                if reply[0] // 100 == 5:
                    return Rejected(f"{phase} refused: {_code_text(reply)}", reply[0], bounce)
                return RetryLater(f"{phase} refused: {_code_text(reply)}")
        if data[0] != 354:
            self._end_transaction(data)
            return RetryLater(f"DATA refused: {_code_text(data)}")
        try:
            connection.send(dot_stuffed(envelope.data))
        except (smtplib.SMTPException, OSError) as error:
            self._drop()
            return RetryLater(f"connection lost before the end of the data: {error}")
        try:
            code, reply = connection.getreply()
        except (smtplib.SMTPException, OSError) as error:
            self._drop()
            return Uncertain(f"no reply after the data was sent: {error}")
        if code // 100 == 2:
            return Sent()
        if code // 100 == 5:
            return Rejected(f"DATA refused: {_code_text((code, reply))}", code)
        return RetryLater(f"DATA refused: {_code_text((code, reply))}")

    def _end_transaction(self, data_reply: tuple[int, bytes]) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            if data_reply[0] == 354:  # a server that took DATA anyway: send nothing
                connection.send(b".\r\n")
                connection.getreply()
            connection.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()
