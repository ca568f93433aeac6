"""The spool: a hit is on disk before its answer, reaches the database exactly once, and
survives its process being killed."""

from __future__ import annotations

import http.client
import os
import resource
import signal
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from nurture.models import Delivery, TrackingHit
from nurture.spool import Spool, SpooledHit, ingest, micros, parse, recover

if TYPE_CHECKING:
    from tracked_email import Tracked

pytest_plugins = ["tracked_email"]

OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"

# A web process whose writer never gets to write (its interval is an hour): whatever
# reaches the database after it is killed came from its spool file.
SERVER = """
import sys
from dataclasses import replace
from pathlib import Path
from werkzeug.serving import make_server
from nurture.app import create_app
from nurture.config import load_settings
from nurture.runtime import Runtime
from nurture.spool import Spool

settings = load_settings(environ={}, overrides={
    "database_url": sys.argv[1], "secret_key": sys.argv[2], "spool_dir": Path(sys.argv[3]),
    "sequences_dir": Path(sys.argv[4]), "templates_dir": Path(sys.argv[5]),
})
runtime = Runtime(settings)
runtime.spool = Spool(Path(sys.argv[3]), runtime.engine, interval=3600)
server = make_server("127.0.0.1", 0, create_app(runtime=runtime), threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


def rows(tracked: Tracked) -> list[tuple[str, int | None, str | None]]:
    with tracked.runtime.sessions() as session:
        return [
            (h.kind, h.link, h.user_agent)
            for h in session.scalars(select(TrackingHit).order_by(TrackingHit.id))
        ]


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"User-Agent": OUTLOOK})
    status = connection.getresponse().status
    connection.close()
    return status


def test_hits_of_a_killed_process_are_in_its_spool_and_recovered_exactly_once(
    tracked: Tracked, tmp_path: Path
) -> None:
    folder = tmp_path / "dead-spool"
    settings = tracked.runtime.settings
    child = subprocess.Popen(
        [sys.executable, "-c", SERVER, settings.database_url, settings.secret_key or "",
         str(folder), str(settings.sequences_dir), str(settings.templates_dir)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        assert get(port, tracked.pixel) == 200
        assert get(port, tracked.links[1]) == 302
        [spooled] = folder.glob("*.hits")
        lines = spooled.read_bytes().splitlines(keepends=True)
        assert len(lines) == 2  # written before the answers, not yet in the database
        assert rows(tracked) == []
        assert recover(folder, tracked.runtime.engine) == 0  # alive: its file is left alone
        assert spooled.exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    # Its writer had committed the first line, then died before emptying the file.
    ingest(tracked.runtime.engine, parse(lines[0], "test"))
    assert recover(folder, tracked.runtime.engine) == 2
    assert rows(tracked) == [("open", None, OUTLOOK), ("click", 1, OUTLOOK)]
    assert list(folder.iterdir()) == []
    assert recover(folder, tracked.runtime.engine) == 0
    assert len(rows(tracked)) == 2


def test_the_writer_ingests_every_hit_exactly_once_while_hits_keep_coming(
    tracked: Tracked, tmp_path: Path
) -> None:
    with tracked.runtime.sessions() as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    spool = Spool(tmp_path / "busy", tracked.runtime.engine, interval=0.001, batch=7)
    per_thread, threads = 150, 4

    def reader(n: int) -> None:
        for i in range(per_thread):
            spool.append(delivery_id, "click", n, None, "GET", f"10.0.0.{n}", str(i), tracked.later)

    workers = [threading.Thread(target=reader, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for _ in range(20):  # flushes from here race the writer thread and the appends
        spool.flush()
    for worker in workers:
        worker.join()
    spool.close()
    with tracked.runtime.sessions() as session:
        count = session.scalar(select(func.count()).select_from(TrackingHit))
        keys = session.scalar(select(func.count(func.distinct(TrackingHit.spool_key))))
        per_link = dict(
            session.execute(select(TrackingHit.link, func.count()).group_by(TrackingHit.link)).all()
        )
    assert count == keys == per_thread * threads
    assert per_link == {n: per_thread for n in range(threads)}
    assert list((tmp_path / "busy").iterdir()) == []  # closed cleanly: nothing left over


def _arriving_during_ingest(
    monkeypatch: pytest.MonkeyPatch,
    spool: Spool,
    delivery_id: int,
    at: datetime,
    per_batch: int,
    times: int,
) -> list[int]:
    """Make the writer's first `times` transactions meet `per_batch` new hits appended
    while they run, as requests do under a steady load; the sizes of its batches."""
    batches: list[int] = []

    def ingest_meanwhile(engine: Any, hits: list[SpooledHit]) -> None:
        batches.append(len(hits))
        for n in range(per_batch if len(batches) <= times else 0):
            spool.append(delivery_id, "open", None, None, "GET", "10.0.0.9", f"late {n}", at)
        ingest(engine, hits)

    monkeypatch.setattr("nurture.spool.ingest", ingest_meanwhile)
    return batches


def test_hits_arriving_during_a_flush_wait_for_the_next_one_and_batch_together(
    tracked: Tracked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush that chased every hit appended while it ran would commit a handful at a
    time, over and over, under a steady load (a sixth of the pixel's cost on PostgreSQL)."""
    with tracked.runtime.sessions() as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    spool = Spool(tmp_path / "steady", tracked.runtime.engine, interval=3600)
    for n in range(50):
        spool.append(delivery_id, "open", None, None, "GET", "10.0.0.1", str(n), tracked.later)
    batches = _arriving_during_ingest(monkeypatch, spool, delivery_id, tracked.later, 3, 1)
    assert spool.flush() == 50
    assert spool.flush() == 3  # the three that came meanwhile, in one transaction
    assert batches == [50, 3]
    monkeypatch.undo()
    spool.close()
    assert len(rows(tracked)) == 53


def test_a_file_never_caught_up_with_is_left_for_a_new_one_and_removed(
    tracked: Tracked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a load that never pauses, the file is never found fully written to the
    database, so never emptied: past `ROTATE_AT`, new hits go to a new file and the old
    one is finished and removed, every hit in the database once."""
    with tracked.runtime.sessions() as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    monkeypatch.setattr("nurture.spool.ROTATE_AT", 500)  # bytes: a few lines
    folder = tmp_path / "rotating"
    spool = Spool(folder, tracked.runtime.engine, interval=3600)
    for n in range(20):
        spool.append(delivery_id, "open", None, None, "GET", "10.0.0.1", str(n), tracked.later)
    first = spool.path
    _arriving_during_ingest(monkeypatch, spool, delivery_id, tracked.later, 2, 2)
    spool.flush()
    assert first is not None and not first.exists()
    assert spool.path is not None and spool.path != first  # the hits that came meanwhile
    assert [p.name for p in folder.iterdir()] == [spool.path.name]
    monkeypatch.undo()
    spool.close()
    agents = [agent for _, _, agent in rows(tracked)]
    assert sorted(agents, key=str) == sorted([str(n) for n in range(20)] + ["late 0", "late 1"] * 2)
    assert list(folder.iterdir()) == []


def test_a_stopping_process_writes_its_hits_before_it_leaves(tracked: Tracked) -> None:
    with tracked.runtime.sessions() as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    spool = tracked.runtime.spool
    spool.append(delivery_id, "open", None, None, "GET", "10.0.0.1", OUTLOOK, tracked.later)
    path = spool.path
    assert path is not None and path.exists()
    tracked.runtime.close()
    assert len(rows(tracked)) == 1
    assert not path.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_keeps_its_own_spool_and_not_its_parents_lock(
    tracked: Tracked, tmp_path: Path
) -> None:
    with tracked.runtime.sessions() as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    folder = tmp_path / "forked"
    spool = Spool(folder, tracked.runtime.engine, interval=3600)
    spool.append(delivery_id, "open", None, None, "GET", "10.0.0.1", "parent", tracked.later)
    parent_file = spool.path
    pid = os.fork()
    if pid == 0:  # the child, as a gunicorn worker after --preload
        code = 1
        try:
            tracked.runtime.engine.dispose(close=False)  # the parent's connections
            spool.append(delivery_id, "open", None, None, "GET", "10.0.0.2", "child", tracked.later)
            code = 0 if spool.path != parent_file else 2
            spool.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The child wrote its own file and removed it; the parent's is still its own.
    assert parent_file is not None and [p.name for p in folder.iterdir()] == [parent_file.name]
    assert recover(folder, tracked.runtime.engine) == 0  # still locked by the parent
    assert [agent for _, _, agent in rows(tracked)] == ["child"]
    spool.close()
    assert sorted(agent or "" for _, _, agent in rows(tracked)) == ["child", "parent"]


def test_a_file_left_half_created_is_removed_only_once_it_is_stale(
    tracked: Tracked, tmp_path: Path
) -> None:
    folder = tmp_path / "half"
    folder.mkdir()
    young, old = folder / "1-a-1.new", folder / "2-b-1.new"
    young.touch()  # its process may be about to lock and rename it
    old.touch()
    os.utime(old, (0, 0))  # a process that died between creating and locking it
    assert recover(folder, tracked.runtime.engine) == 0
    assert [p.name for p in folder.iterdir()] == [young.name]


def test_a_line_cut_short_by_a_full_disk_is_taken_back(tracked: Tracked, tmp_path: Path) -> None:
    with tracked.runtime.sessions() as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    spool = Spool(tmp_path / "filling", tracked.runtime.engine, interval=3600)

    def hit(agent: str) -> str:
        return spool.append(
            delivery_id, "open", None, None, "GET", "10.0.0.1", agent, tracked.later
        )

    hit("before")
    assert spool.flush() == 1  # the file is empty again
    # Files may grow to 40 bytes only: the next line (about 150) is written in part, then
    # the write fails, as on a disk that fills up (a fault root cannot write through).
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG rather than the signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (40, hard))
    try:
        with pytest.raises(OSError):
            hit("cut short")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert spool.path is not None and spool.path.stat().st_size == 0  # the fragment is gone
    assert spool.write_failures == 1
    assert spool.failure is not None and str(tmp_path / "filling") in spool.failure
    hit("after")  # would have been glued to the fragment, and lost with it
    assert spool.check() is None
    assert spool.flush() == 1
    spool.close()
    assert [agent for _, _, agent in rows(tracked)] == ["before", "after"]


def test_a_hit_the_spool_cannot_take_is_inserted_once_under_its_key(
    tracked: Tracked, tmp_path: Path
) -> None:
    with tracked.runtime.sessions() as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder's parent should be")
    spool = Spool(blocker / "spool", tracked.runtime.engine, interval=3600)
    fields = ("click", 1, "https://x.example/", "GET", "10.0.0.1", "a")
    recorded = spool.record(delivery_id, *fields, tracked.later)
    assert not recorded.spooled and spool.path is None
    assert (spool.write_failures, spool.direct) == (1, 1)
    assert spool.check() is not None and str(blocker / "spool") in spool.check()
    # The same hit again (its request retried, or a spool line of it found later): kept once.
    same = SpooledHit(recorded.key, delivery_id, *fields, micros(tracked.later))
    ingest(tracked.runtime.engine, [same])
    with tracked.runtime.sessions() as session:
        assert session.scalars(select(TrackingHit.spool_key)).all() == [recorded.key]
    spool.close()
