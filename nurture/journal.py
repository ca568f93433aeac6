"""The SMTP journal: what a worker put on the wire and what the relay answered, on the
machine's disk before the database hears of it.

A worker marks a chunk of deliveries `sending` in one commit, then its SMTP thread
carries them one by one. Just before a message's data goes out it appends `S id`;
once the relay has answered, `R id …` with the answer. Each line is one `os.write`
to a file opened with O_APPEND and held under `flock` for the process's life, so a
killed process loses nothing the kernel had (an operating-system crash can lose the
last lines; the database then still says `sending`, and those become uncertain:
never resent blindly).

When a dead worker's journal is read back (`recover`, by the next worker on the same
machine), each of its `sending` deliveries is settled exactly:

- an answer in the journal is recorded as if the worker had recorded it;
- `S` without an answer: the one message on the wire when it died: `uncertain`;
- no line at all: it never left: released, to be sent by whoever claims it next.

So a crash leaves at most one uncertain email per SMTP connection, instead of every
email of the chunks that were handed over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nurture.mail import Rejected, RetryLater, SendResult, Sent, Uncertain

log = logging.getLogger(__name__)

SUFFIX = ".journal"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def encode(delivery_id: int, result: SendResult) -> bytes:
    """One `R` line: the answer as it must be recorded."""
    match result:
        case Sent(reply=reply):
            fields: dict[str, object] = {"sent": reply}
        case Uncertain(reason=reason, last_reply=last):
            fields = {"uncertain": reason, "last": last}
        case Rejected(reason=reason, code=code, bounce=bounce):
            fields = {"rejected": reason, "code": code, "bounce": bounce}
        case RetryLater(reason=reason, relay_down=down):
            fields = {"retry": reason, "down": down}
    return f"R {delivery_id} {json.dumps(fields, separators=(',', ':'))}\n".encode()


def decode(fields: dict[str, object]) -> SendResult:
    if "sent" in fields:
        return Sent(str(fields["sent"]))
    if "uncertain" in fields:
        return Uncertain(str(fields["uncertain"]), str(fields.get("last", "")))
    if "rejected" in fields:
        code = fields.get("code")
        return Rejected(
            str(fields["rejected"]),
            code if isinstance(code, int) else 550,
            bool(fields.get("bounce")),
        )
    return RetryLater(str(fields.get("retry", "")), bool(fields.get("down")))


@dataclass
class Entries:
    """What one journal says: whose it is, what went out, what came back."""

    holder: str | None = None
    started: list[int] = field(default_factory=list)
    answers: dict[int, SendResult] = field(default_factory=dict)

    @property
    def on_the_wire(self) -> list[int]:
        """Started and never answered."""
        return [d for d in self.started if d not in self.answers]


def parse(data: bytes) -> Entries:
    """Read a journal; a torn last line (the process died mid-write) is ignored."""
    entries = Entries()
    for line in data.split(b"\n"):
        kind, _, rest = line.decode("utf-8", "replace").partition(" ")
        try:
            if kind == "H":
                entries.holder = rest.strip()
            elif kind == "S":
                entries.started.append(int(rest))
            elif kind == "R":
                number, _, payload = rest.partition(" ")
                entries.answers[int(number)] = decode(json.loads(payload))
        except (ValueError, TypeError):
            continue  # a torn line: whatever it said did not finish
    return entries


class Journal:
    """This process's journal; opened on first use, removed when closed with nothing
    left to settle."""

    def __init__(self, folder: Path, holder: str) -> None:
        self.folder = Path(folder)
        self.holder = holder
        self.path = self.folder / f"{_UNSAFE.sub('_', holder)}{SUFFIX}"
        self._fd: int | None = None
        self.dirty = False  # holds notes the database may not have yet

    def open(self) -> int:
        """Open (and lock) the file now: it must exist before anything is handed over."""
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours until we exit
            os.ftruncate(fd, 0)
            os.write(fd, f"H {self.holder}\n".encode())
            self._fd = fd
        return self._fd

    def started(self, delivery_id: int) -> None:
        self.dirty = True
        os.write(self.open(), b"S %d\n" % delivery_id)

    def answered(self, delivery_id: int, result: SendResult) -> None:
        os.write(self.open(), encode(delivery_id, result))

    def clear(self) -> None:
        """Everything written so far is recorded in the database: start afresh."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.write(self._fd, f"H {self.holder}\n".encode())
        self.dirty = False

    def close(self) -> None:
        """Release the file; remove it only if everything in it is recorded (else the
        next worker on this machine settles it)."""
        if self._fd is None:
            return
        if not self.dirty:
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(self._fd)
        self._fd = None


@contextlib.contextmanager
def orphans(folder: Path, own: Path | None = None) -> Iterator[list[tuple[Path, Entries]]]:
    """The journals of dead processes in `folder`, each locked while the caller settles
    them; every one whose lock was taken is removed afterwards, if the caller returned
    without an error."""
    found: list[tuple[Path, Entries, int]] = []
    try:
        if folder.is_dir():
            for path in sorted(folder.glob(f"*{SUFFIX}")):
                if own is not None and path == own:
                    continue
                try:
                    fd = os.open(path, os.O_RDWR)
                except FileNotFoundError:
                    continue  # settled by another worker meanwhile
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)  # its process is alive
                    continue
                if not path.exists():  # removed between open and lock
                    os.close(fd)
                    continue
                found.append((path, parse(_read_all(fd)), fd))
        yield [(path, entries) for path, entries, _ in found]
        for path, _, _ in found:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        for _, _, fd in found:
            os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
