"""The SMTP journal as a file: every answer read back as written, torn lines ignored,
a live process's journal never taken, a dirty one never removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurture.journal import Journal, orphans, parse
from nurture.mail import Rejected, RetryLater, SendResult, Sent, Uncertain


@pytest.mark.parametrize(
    "result",
    [
        Sent("250 2.0.0 Ok: queued as 4ABC"),
        Uncertain("no reply after the data was sent: timed out", "250 queued as 4ABB"),
        Rejected("RCPT TO refused: 550 5.1.1 no such user", 550, bounce=True),
        RetryLater("MAIL FROM refused: 421 closing", relay_down=True),
        RetryLater("451 try later"),
    ],
)
def test_each_answer_is_read_back_as_written(tmp_path: Path, result: SendResult) -> None:
    journal = Journal(tmp_path, "host/1/ab")
    journal.started(7)
    journal.answered(7, result)
    entries = parse(journal.path.read_bytes())
    assert entries.holder == "host/1/ab"
    back = entries.answers[7]
    assert back == result and type(back) is type(result)
    if isinstance(result, Sent):
        assert isinstance(back, Sent) and back.reply == result.reply
    journal.close()


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "x.journal"
    path.write_bytes(b'H w/1/a\nS 1\nR 1 {"sent":"250 ok"}\nS 2\nR 2 {"se')
    entries = parse(path.read_bytes())
    assert entries.started == [1, 2]
    assert list(entries.answers) == [1]
    assert entries.on_the_wire == [2]


def test_a_live_journal_is_not_taken_and_a_dead_one_is_removed_once_settled(
    tmp_path: Path,
) -> None:
    live = Journal(tmp_path, "host/1/live")
    live.started(1)
    dead = Journal(tmp_path, "host/2/dead")
    dead.started(2)
    assert dead._fd is not None
    import os

    os.close(dead._fd)  # its process died
    dead._fd = None
    with orphans(tmp_path) as found:
        assert [entries.holder for _, entries in found] == ["host/2/dead"]
    assert not dead.path.exists() and live.path.exists()
    live.close()
    assert live.path.exists()  # it holds a note the database may not have
