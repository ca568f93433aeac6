"""The spool: each tracking hit on disk before its answer, then in the database in batches.

A process appends one JSON line per hit to its own file in the spool folder (opened
`O_APPEND`, one `os.write` per hit): once the write has returned, the hit survives the
process being killed. A writer thread in the same process moves the complete lines
into `tracking_hits` every 50 ms on SQLite, 250 ms on PostgreSQL (sooner when many
wait), all of them in one transaction, then empties the file. Each line carries a key
unique to it; the key is unique in the table too, so ingesting a line a second time
adds nothing.

A process holds an exclusive `flock` on its file for as long as it lives. A file whose
lock another process can take belongs to a process that died: `recover` ingests it and
removes it. The folder must be local to the machine (`flock` over NFS is not reliable).

When the folder cannot be written (missing and not creatable, read-only, a full disk),
`record` inserts the hit straight into the database instead, the same row under the same
kind of key; the failure is kept for `/healthz` and counted for `/metrics` (`check`).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Integer, String, Text, bindparam, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from nurture.models import Delivery, TrackingHit, UTCDateTime

log = logging.getLogger(__name__)

SUFFIX = ".hits"
NEW = ".new"  # a file being created, before its process holds the lock
INTERVAL = 0.05  # seconds between two commits of the writer (SQLite)
# PostgreSQL shares its CPU with the web processes when on the same machine; fewer,
# larger commits left the routes 10 points faster there (docs/performance.md).
INTERVAL_POSTGRESQL = 0.25
BATCH = 500  # lines waiting that wake the writer before its interval is up
READ_LIMIT = 4 * 1024 * 1024  # bytes read (and committed) at once: a bounded transaction
ROTATE_AT = 16 * 1024 * 1024  # a file never caught up with is left for a new one here


class Unrecorded(Exception):
    """Neither the spool nor the database took the hit."""


@dataclass(frozen=True)
class Recorded:
    """Where a hit went: the spool file, or straight into the database (`spooled` false)
    because the spool could not take it."""

    key: str
    spooled: bool


# One encoder for every line: `json.dumps` with options builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class SpooledHit:
    """One open or click as the request saw it; `at` in microseconds since the epoch.

    A line of the spool file is the JSON array of these fields, in this order."""

    key: str
    delivery: int
    kind: str
    link: int | None
    url: str | None
    method: str
    ip: str
    agent: str
    at: int

    def line(self) -> bytes:
        fields = [self.key, self.delivery, self.kind, self.link, self.url, self.method]
        fields += [self.ip, self.agent, self.at]
        return (_encode(fields) + "\n").encode()

    def row(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "delivery": self.delivery,
            "kind": self.kind,
            "link": self.link,
            "url": self.url,
            "method": self.method[:10],
            "ip": self.ip[:64],
            "agent": self.agent[:1000],
            "at": datetime.fromtimestamp(self.at / 1_000_000, UTC),
        }


def micros(at: datetime) -> int:
    return round(at.timestamp() * 1_000_000)


def ingest(engine: Engine, hits: list[SpooledHit]) -> None:
    """Insert `hits` in one transaction; a key already there, or a delivery that no
    longer exists (erased), is skipped: the hit has nothing to belong to."""
    if not hits:
        return
    rows = [hit.row() for hit in hits]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # One statement for the whole batch, its arrays sent in binary: psycopg
            # quotes every string of a text array with regular expressions, a quarter of
            # the writer's time.
            driver = connection.connection.driver_connection
            assert driver is not None  # a checked-out connection has its driver's
            driver.cursor().execute(
                INSERT_UNNEST, {k: [r[k] for r in rows] for k in COLUMNS}, binary=True
            )
        else:
            connection.execute(_insert(), rows)


COLUMNS = ("key", "delivery", "kind", "link", "url", "method", "ip", "agent", "at")
# The hit's delivery gives its lead; a hit whose delivery is gone inserts nothing
# instead of failing the whole batch. psycopg's own placeholders: run on its cursor.
INSERT_UNNEST = (
    "INSERT INTO tracking_hits (spool_key, delivery_id, lead_id, kind, link, url, method, ip,"
    " user_agent, at)"
    " SELECT h.key, d.id, d.lead_id, h.kind, h.link, h.url, h.method, h.ip, h.agent, h.at"
    " FROM unnest(CAST(%(key)s AS varchar[]), CAST(%(delivery)s AS integer[]),"
    " CAST(%(kind)s AS varchar[]), CAST(%(link)s AS integer[]), CAST(%(url)s AS text[]),"
    " CAST(%(method)s AS varchar[]), CAST(%(ip)s AS varchar[]), CAST(%(agent)s AS text[]),"
    " CAST(%(at)s AS timestamptz[])) AS h(key, delivery, kind, link, url, method, ip, agent, at)"
    " JOIN deliveries d ON d.id = h.delivery"
    " ON CONFLICT (spool_key) DO NOTHING"
)


def _insert() -> Insert:
    """SQLite: the same INSERT … SELECT, one row per hit (executemany, in-process)."""
    table = TrackingHit.__table__
    columns = ["spool_key", "delivery_id", "lead_id", "kind", "link", "url", "method", "ip"]
    columns += ["user_agent", "at"]
    source = select(
        bindparam("key", type_=String()),
        Delivery.id,
        Delivery.lead_id,
        bindparam("kind", type_=String()),
        bindparam("link", type_=Integer()),
        bindparam("url", type_=Text()),
        bindparam("method", type_=String()),
        bindparam("ip", type_=String()),
        bindparam("agent", type_=Text()),
        bindparam("at", type_=UTCDateTime()),
    ).where(Delivery.id == bindparam("delivery", type_=Integer()))
    statement: Insert = (
        sqlite.insert(table)  # type: ignore[arg-type]  # the Table behind a mapped class
        .from_select(columns, source, include_defaults=False)  # `reasons`: the server's
        .on_conflict_do_nothing(index_elements=["spool_key"])
    )
    return statement


def parse(data: bytes, where: str) -> list[SpooledHit]:
    """The hits in complete lines; a line that does not read is logged and skipped."""
    hits = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            hits.append(SpooledHit(*json.loads(line)))
        except (ValueError, TypeError):
            log.error("%s, line %d: not a spooled hit, skipped: %r", where, number, line[:200])
    return hits


def _chunks(hits: list[SpooledHit], size: int = 2000) -> Iterable[list[SpooledHit]]:
    for start in range(0, len(hits), size):
        yield hits[start : start + size]


def recover(folder: Path, engine: Engine, own: Path | None = None) -> int:
    """Ingest the spool files of dead processes, then remove them; the number of hits read.

    Safe to run anywhere on the machine, at any time, by several processes at once: a
    live process's file is locked and left alone, and a hit ingested twice is kept once.
    """
    if not folder.is_dir():
        return 0
    found = 0
    for path in sorted(folder.iterdir()):
        if path == own or path.suffix != SUFFIX:
            if path.suffix == NEW:
                _remove_stale(path)
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # recovered by another process just now
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive
            data = _read_all(fd)
            complete = data[: data.rfind(b"\n") + 1]
            if len(complete) < len(data):
                log.warning("%s: an unfinished last line was dropped", path)
            hits = parse(complete, str(path))
            for chunk in _chunks(hits):
                ingest(engine, chunk)
            found += len(hits)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            if hits:
                log.info("%s: %d tracking hits recovered", path, len(hits))
        finally:
            os.close(fd)
    return found


def _remove_stale(path: Path) -> None:
    """A file a process created and died before locking and renaming it: empty. Left
    alone while young (its process may be about to lock it)."""
    with contextlib.suppress(FileNotFoundError):
        if time.time() - path.stat().st_mtime > 60:
            path.unlink()


def _read_all(fd: int) -> bytes:
    parts = []
    offset = 0
    while chunk := os.pread(fd, READ_LIMIT, offset):
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


class Spool:
    """This process's spool file and its writer thread; both start with the first hit.

    Fork-safe: a child process (gunicorn `--preload`) starts with no file and no thread
    of its own, and never keeps its parent's file locked.
    """

    def __init__(
        self,
        folder: Path,
        engine: Engine,
        *,
        interval: float | None = None,
        batch: int = BATCH,
    ) -> None:
        self.folder = folder
        self.engine = engine
        if interval is None:
            postgresql = engine.dialect.name == "postgresql"
            interval = INTERVAL_POSTGRESQL if postgresql else INTERVAL
        self.interval = interval
        self.batch = batch
        self._start()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget(ref))

    def _start(self) -> None:
        self._lock = threading.Lock()  # appends against the writer's truncation
        self._flushing = threading.Lock()  # one flush at a time: the thread, close()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._file: _File | None = None
        self._retired: list[_File] = []  # files left for a new one, not yet drained
        self._nonce = secrets.token_hex(6)
        self._counter = itertools.count(1)
        self._waiting = 0
        self._thread: threading.Thread | None = None
        # Why the last write to the spool failed; None once one succeeded.
        self._failure: str | None = None
        self.write_failures = 0  # hits this process could not write to its spool
        self.direct = 0  # of those, hits inserted straight into the database instead

    @property
    def path(self) -> Path | None:
        """This process's spool file, once a hit was written."""
        file = self._file
        return file.path if file is not None else None

    def append(
        self,
        delivery: int,
        kind: str,
        link: int | None,
        url: str | None,
        method: str,
        ip: str,
        agent: str,
        at: datetime,
    ) -> str:
        """Write one hit down; when this returns it survives the process. Its key.

        Raises OSError when the spool cannot take it (counted, and kept for `check`)."""
        hit = self._hit(delivery, kind, link, url, method, ip, agent, at)
        self._write(hit)
        return hit.key

    def record(
        self,
        delivery: int,
        kind: str,
        link: int | None,
        url: str | None,
        method: str,
        ip: str,
        agent: str,
        at: datetime,
    ) -> Recorded:
        """`append`, or, when the spool cannot take the hit, insert it straight into the
        database: the row the writer would have written, under its key, so a hit inserted
        twice is kept once. Raises `Unrecorded` when the database cannot take it either."""
        hit = self._hit(delivery, kind, link, url, method, ip, agent, at)
        try:
            self._write(hit)
            return Recorded(hit.key, spooled=True)
        except OSError as error:
            failure = error
        try:
            # A transaction per hit, what the spool exists to avoid: slower, but kept.
            ingest(self.engine, [hit])
        except SQLAlchemyError as error:
            raise Unrecorded(f"{failure}; and the database: {error}") from error
        with self._lock:
            self.direct += 1
        return Recorded(hit.key, spooled=False)

    @property
    def failure(self) -> str | None:
        """Why the last write to the spool failed, naming the folder; None once one
        succeeded (or none was tried)."""
        return self._failure

    def check(self) -> str | None:
        """None when a hit written now would reach the spool file; else why not, naming the
        folder (for `/healthz`).

        Touches the disk only while no hit has been written yet or the last write failed,
        so a folder mended by hand shows healthy again without waiting for a reader: a
        test file in the folder, or a blank line in the open file (the writer skips it).
        """
        with self._lock:
            if self._file is not None and self._failure is None:
                return None
            try:
                if self._file is None:
                    self._probe()
                else:
                    self._append_bytes(self._file, b"\n")
            except OSError as error:
                self._failure = self._describe(error)
            else:
                self._failure = None
            return self._failure

    def _hit(
        self,
        delivery: int,
        kind: str,
        link: int | None,
        url: str | None,
        method: str,
        ip: str,
        agent: str,
        at: datetime,
    ) -> SpooledHit:
        key = f"{self._nonce}-{next(self._counter)}"
        return SpooledHit(key, delivery, kind, link, url, method, ip, agent, micros(at))

    def _write(self, hit: SpooledHit) -> None:
        data = hit.line()
        with self._lock:
            try:
                if self._file is None:
                    self._file = self._open()
                self._append_bytes(self._file, data)
            except OSError as error:
                self.write_failures += 1
                self._failure = self._describe(error)
                raise
            self._failure = None
            self._waiting += 1
            if self._waiting >= self.batch:
                self._wake.set()

    @staticmethod
    def _append_bytes(file: _File, data: bytes) -> None:
        """One line at the end of the file, or nothing: a write cut short by a full disk
        is taken back, or the next line would be glued to its fragment and lost with it.
        The caller holds the lock, so the end of the file is this write's."""
        if file.torn:
            data = b"\n" + data  # the fragment becomes a line of its own, skipped
        written = 0
        try:
            while written < len(data):
                written += os.write(file.fd, data[written:])
        except OSError:
            if written:
                try:
                    os.ftruncate(file.fd, os.fstat(file.fd).st_size - written)
                except OSError:
                    file.torn = True
            raise
        file.torn = False

    def _probe(self) -> None:
        """Create, write and remove a file in the folder, as the first hit would."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # `.new`: removed by `recover` should this process die before removing it.
        probe = self.folder / f"probe-{os.getpid()}-{self._nonce}{NEW}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"\n")
        finally:
            os.close(fd)
            probe.unlink()

    def _describe(self, error: OSError) -> str:
        return f"spool folder {self.folder} cannot be written: {error.strerror or error}"

    def _open(self) -> _File:
        self.folder.mkdir(parents=True, exist_ok=True)
        # Created under another name and renamed once locked: `recover` never takes
        # the file of a live process.
        name = f"{os.getpid()}-{self._nonce}-{next(self._counter)}"
        new = self.folder / f"{name}{NEW}"
        fd = os.open(new, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        path = self.folder / f"{name}{SUFFIX}"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(new, path)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                new.unlink()
            raise
        if self._thread is None:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="nurture-spool", daemon=True)
            self._thread.start()
            atexit.register(self.close)
        return _File(fd, path)

    def _run(self) -> None:
        try:
            recover(self.folder, self.engine, own=self.path)
        except Exception:
            log.exception("could not recover the spool files of dead processes")
        stop = self._stop
        while not stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the hits stay in the file; try again a bit later
                log.exception("could not write tracking hits to the database")
                stop.wait(1.0)

    def flush(self) -> int:
        """Move the complete lines written so far into the database; how many.

        Lines appended meanwhile wait for the next flush: taking them at once would mean
        a transaction for a handful of hits, again and again, under a steady load."""
        with self._flushing:
            moved = 0
            while self._retired:
                moved += self._drain(self._retired[0])
                self._retired.pop(0)
            file = self._file
            if file is None:
                return moved
            moved += self._flush(file)
            with self._lock:
                end = os.fstat(file.fd).st_size
                if end == file.offset:
                    os.ftruncate(file.fd, 0)  # appends wait for the lock: none is lost
                    file.offset = 0
                    return moved
                if file.offset < ROTATE_AT or self._file is not file:
                    return moved
                # Never caught up with (a steady load): new hits go to a new file, and
                # this one is finished and removed.
                self._file = None
                self._retired.append(file)
            moved += self._drain(file)
            self._retired.pop(0)
            return moved

    def _flush(self, file: _File) -> int:
        """Ingest the file's complete lines up to its size now, a bounded chunk at a time."""
        with self._lock:
            end = os.fstat(file.fd).st_size
            self._waiting = 0
        moved = 0
        while file.offset < end:
            data = os.pread(file.fd, min(end - file.offset, READ_LIMIT), file.offset)
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                break
            hits = parse(data[:cut], str(file.path))
            ingest(self.engine, hits)
            moved += len(hits)
            file.offset += cut
        return moved

    def _drain(self, file: _File) -> int:
        """Ingest the rest of a file no longer written to, then remove it. On a database
        error it stays, locked, for the next flush (or `recover` once this process is gone)."""
        moved = self._flush(file)
        with contextlib.suppress(FileNotFoundError):
            file.path.unlink()
        os.close(file.fd)
        return moved

    def close(self) -> None:
        """Stop the writer, write the rest, remove the file (or leave it to `recover`
        when the database cannot take the rest). A later hit starts afresh."""
        atexit.unregister(self.close)
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._flushing:
            with self._lock:
                file, self._file = self._file, None
            files, self._retired = self._retired, []
            if file is not None:
                files.append(file)
            for file in files:
                try:
                    self._flush(file)
                    file.path.unlink()
                except Exception:
                    log.exception("tracking hits left in %s for recovery", file.path)
                finally:
                    os.close(file.fd)  # releases the lock


@dataclass
class _File:
    fd: int
    path: Path
    offset: int = 0  # bytes already in the database
    torn: bool = False  # ends with a line cut short that could not be taken back


def _forget(ref: weakref.ReferenceType[Spool]) -> None:
    spool = ref()
    if spool is None:
        return
    for file in [spool._file, *spool._retired]:
        if file is not None:
            os.close(file.fd)  # the parent's lock stays with the parent
    atexit.unregister(spool.close)
    spool._start()
