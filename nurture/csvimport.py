"""CSV import: streamed in chunks (one transaction each), every bad row reported with
its line number and reason, and safe to run again (rows are upserts by email).

Each chunk commits with the import's progress (`import_runs`: bytes and lines read,
counts), so an interrupted import resumes after its last committed chunk and takes
every row exactly once. Bad rows go to `FILE.errors.csv` beside the input (line,
reason): written before the chunk that follows them commits, and cut back on resume
to what the last committed chunk recorded, so the file lists each bad row once.
"""

from __future__ import annotations

import csv
import hashlib
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from nurture.clock import Clock
from nurture.core.intake import InvalidInput, LeadInput, normalise_email, parse_lead
from nurture.db import bulk_writing
from nurture.intake_batch import take_batch
from nurture.models import ImportRun
from nurture.runtime import Runtime

ERRORS_HEADER = ("line", "reason")  # FILE.errors.csv


class NothingToResume(Exception):
    """No interrupted import of this file to resume (or the file changed since)."""


@dataclass
class ImportReport:
    created: int = 0  # counts include what an interrupted run committed before
    updated: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), this run
    refused_before: int = 0  # refused by the interrupted run (in the errors file)
    resumed_at: int | None = None  # the first line read by this run, when it resumed
    errors_file: Path | None = None  # FILE.errors.csv, when any row was refused


@dataclass(frozen=True)
class Share:
    """The rows one process of an import split among `count` takes (nurture.import_split):
    those of the people whose normalised address hashes to `index`, so that each person's
    rows stay in one process, in file order. A row with no address to hash (unreadable,
    not UTF-8, no email) goes by its line number: one process reports it."""

    index: int = 0
    count: int = 1

    def takes_line(self, line: int) -> bool:
        return line % self.count == self.index

    def takes(self, email: str | None, line: int, fold_subaddress: bool) -> bool:
        if self.count == 1:
            return True
        if not email or not email.strip():
            return self.takes_line(line)
        try:
            key = normalise_email(email.strip(), fold_subaddress)
        except ValueError:  # refused by whichever process takes it: one does
            key = email.strip().lower()
        # crc32, not hash(): the same in every process.
        return zlib.crc32(key.encode()) % self.count == self.index


def errors_path(path: Path, share: Share = Share()) -> Path:
    """FILE.errors.csv; a part's own while a split import runs (merged at its end)."""
    if share.count == 1:
        return path.with_name(path.name + ".errors.csv")
    return path.with_name(f"{path.name}.errors.part{share.index + 1}of{share.count}.csv")


def fingerprint(path: Path) -> str:
    """The file's size and first 64 KiB: a resume must read the same file."""
    digest = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(65536))
    return digest.hexdigest()


class _Lines:
    """The file's lines as text, for the CSV reader, counting the bytes read (for the
    progress bar) and noting the lines that are not UTF-8: their rows are refused with
    their line number instead of stopping the import."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.read = 0
        self.number = 0  # physical lines read so far
        self.not_utf8: dict[int, str] = {}  # line number -> what is wrong

    def __iter__(self) -> Iterator[str]:
        for raw in self.handle:
            self.number += 1
            self.read += len(raw)
            if self.number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as error:
                self.not_utf8[self.number] = (
                    f"not UTF-8 text (byte 0x{raw[error.start]:02x} at column"
                    f" {error.start + 1}): save the file as UTF-8"
                )
                yield raw.decode("utf-8", errors="replace")


def row_to_lead(row: dict[str | Any, str | Any], source: str | None) -> dict[str, Any]:
    """One CSV row as the API's lead object: `fields.x` columns, `tags` split on `;`."""
    data: dict[str, Any] = {}
    for key, value in row.items():
        if key is None:  # more cells than headers
            raise InvalidInput([])
        if value in (None, ""):
            continue
        data[key.strip()] = value
    custom = {k.removeprefix("fields."): data.pop(k) for k in list(data) if k.startswith("fields.")}
    if custom:
        data["fields"] = custom
    if "tags" in data:
        data["tags"] = [t.strip() for t in str(data["tags"]).split(";") if t.strip()]
    if source and "source" not in data:
        data["source"] = source
    return data


def import_csv(
    runtime: Runtime,
    path: Path,
    now: datetime,
    source: str | None = None,
    progress: Callable[[int], None] | None = None,
    resume: bool = False,
) -> ImportReport:
    """Import the file (or, with `resume`, the rest of an interrupted import of it);
    `progress` is told the bytes read as they are read."""
    path = path.resolve()
    problem = header_problem(path)
    if problem is not None:  # nothing is read: nothing to resume either
        report = ImportReport(refused=[problem])
        errors = _Errors(errors_path(path))
        errors.open(0)
        errors.writer.writerow(problem)
        errors.close()
        report.errors_file = errors.path
        return report
    (run,) = start(runtime, path, now, resume, 1)
    report = read_part(runtime, path, now, source, run, Share(), progress)
    finish(runtime, [run.id], now)
    if report.refused or report.refused_before:
        report.errors_file = errors_path(path)
    else:
        errors_path(path).unlink(missing_ok=True)
    return report


def header_problem(path: Path) -> tuple[int, str] | None:
    """What makes the whole file unreadable, as (line, reason), or None."""
    with path.open("rb") as handle:
        lines = _Lines(handle)
        reader = csv.DictReader(lines)
        try:
            header = reader.fieldnames
        except csv.Error as error:
            return 1, f"the header row cannot be read: {error}"
        if not header or "email" not in [f.strip() for f in header]:
            return 1, "the header row must name an `email` column"
        if 1 in lines.not_utf8:
            return 1, lines.not_utf8[1]
    return None


def read_part(
    runtime: Runtime,
    path: Path,
    now: datetime,
    source: str | None,
    run: ImportRun,
    share: Share,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """The share's rows of the file from where `run` stands (its header checked), each
    chunk committed with `run`'s progress; bad rows in the share's errors file."""
    report = ImportReport()
    settings = runtime.settings
    fold = settings.fold_subaddress
    clock = Clock(now)  # the progress row's time, advancing while the rows keep `now`
    rows = settings.chunk_rows(runtime.engine.dialect.name)
    errors = _Errors(errors_path(path, share))
    with path.open("rb") as handle:
        lines = _Lines(handle)
        reader = csv.DictReader(lines)
        header = reader.fieldnames or ()
        email = next(name for name in header if name.strip() == "email")
        if run.line > lines.number:  # resuming: after the last committed chunk
            handle.seek(run.offset)
            lines.read, lines.number = run.offset, run.line
            report.resumed_at = run.line + 1
            if progress is not None:
                progress(run.offset)
        errors.open(run.errors_size)
        report.created, report.updated, report.refused_before = (
            run.created,
            run.updated,
            run.refused,
        )
        chunk: list[LeadInput] = []
        seen = lines.read
        end = lines.number
        while True:
            start = end + 1  # a row may span lines (a quoted cell with line breaks)
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                end = lines.number
                if share.takes_line(start):
                    errors.add(report, start, _unreadable(error))
                continue
            end = lines.number
            wrong = next(
                (lines.not_utf8[n] for n in range(start, end + 1) if n in lines.not_utf8), None
            )
            if share.takes(None if wrong else row.get(email), start, fold):
                try:
                    if wrong is not None:
                        raise InvalidInput([])
                    chunk.append(parse_lead(row_to_lead(row, source), "", fold))
                except InvalidInput as error:
                    reason = wrong or str(error) or "more cells than columns in the header"
                    errors.add(report, start, reason)
                if len(chunk) >= rows:
                    _store(runtime, chunk, now, report, run, lines, errors, clock)
                    chunk = []
            if progress is not None:
                progress(lines.read - seen)
                seen = lines.read
        _store(runtime, chunk, now, report, run, lines, errors, clock)
    errors.close()
    return report


class _Errors:
    """FILE.errors.csv: the bad rows, appended as they are found; its size is committed
    with each chunk, and a resume cuts it back to that size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[str] | None = None
        self.writer: Any = None

    def open(self, size: int) -> None:
        fresh = size == 0
        self.handle = self.path.open("w" if fresh else "r+", newline="", encoding="utf-8")
        if not fresh:
            self.handle.truncate(size)
            self.handle.seek(size)
        self.writer = csv.writer(self.handle)
        if fresh:
            self.writer.writerow(ERRORS_HEADER)

    def add(self, report: ImportReport, line: int, reason: str) -> None:
        report.refused.append((line, reason))
        if self.writer is not None:
            self.writer.writerow((line, reason))

    def size(self) -> int:
        """Written through to the disk: what a commit may record."""
        if self.handle is None:
            return 0
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return self.handle.tell()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def start(
    runtime: Runtime, path: Path, now: datetime, resume: bool, jobs: int | None = None
) -> list[ImportRun]:
    """The import's progress rows, one per part (`jobs` of them, one when None): new ones,
    or with `resume` those of the latest interrupted import of the file, in as many parts
    as it was started with (`jobs`, when given, must say the same)."""
    mark = fingerprint(path)
    unfinished = (ImportRun.file == str(path), ImportRun.finished_at.is_(None))
    with runtime.sessions.begin() as session:
        if not resume:
            count = jobs or 1
            fresh = dict(
                file=str(path), fingerprint=mark, offset=0, line=0, created=0, updated=0,
                refused=0, errors_size=0, started_at=now, updated_at=now, parts=count,
                size=path.stat().st_size,
            )  # fmt: skip
            runs = [ImportRun(part=part, **fresh) for part in range(count)]
            session.add_all(runs)
            return runs
        latest = interrupted(session, path)
        if latest is None:
            raise NothingToResume(f"no interrupted import of {path} to resume")
        if latest.fingerprint != mark:
            raise NothingToResume(
                f"{path} changed since its import was interrupted: import it again"
                " without --resume (rows are upserts: nothing is duplicated)"
            )
        if jobs is not None and jobs != latest.parts:
            raise other_jobs(path, latest.parts)
        runs = list(
            session.scalars(
                select(ImportRun)
                .where(*unfinished, ImportRun.parts == latest.parts)
                .order_by(ImportRun.id.desc())
                .limit(latest.parts)
            )
        )
        if sorted(run.part for run in runs) != list(range(latest.parts)):
            raise NothingToResume(
                f"the progress of the interrupted import of {path} is incomplete: import it"
                " again without --resume (rows are upserts: nothing is duplicated)"
            )
        return sorted(runs, key=lambda run: run.part)


def interrupted(session: Session, path: Path) -> ImportRun | None:
    """The progress row of the latest interrupted import of the file (one of its parts)."""
    return session.scalar(
        select(ImportRun)
        .where(ImportRun.file == str(path), ImportRun.finished_at.is_(None))
        .order_by(ImportRun.id.desc())
        .limit(1)
    )


def other_jobs(path: Path, parts: int) -> NothingToResume:
    """A resume asked with another --jobs than the import was started with."""
    return NothingToResume(
        f"the interrupted import of {path} ran as {parts} process(es)"
        f" (--jobs {parts}): resume it with the same --jobs, or without"
    )


def finish(runtime: Runtime, runs: list[int], now: datetime) -> None:
    """The import (all its parts) is over: a later --resume finds nothing to go on with."""
    with runtime.sessions.begin() as session:
        session.execute(update(ImportRun).where(ImportRun.id.in_(runs)).values(finished_at=now))


def _unreadable(error: csv.Error) -> str:
    if "field larger than field limit" in str(error):
        return f"a cell longer than {csv.field_size_limit():,} characters"
    return f"not readable as CSV: {error}"


def _store(
    runtime: Runtime,
    chunk: list[LeadInput],
    now: datetime,
    report: ImportReport,
    run: ImportRun,
    lines: _Lines,
    errors: _Errors,
    clock: Clock,
) -> None:
    """The chunk, and the import's progress through it, in one transaction."""
    errors_size = errors.size()
    for attempt in range(3):
        try:
            with runtime.sessions.begin() as session:
                bulk_writing(session)
                results = take_batch(
                    session, runtime.content, runtime.settings, chunk, now, "csv import"
                ) if chunk else []  # fmt: skip
                created = sum(1 for taken in results if taken.created)
                _progress(session, run, lines, created, len(results) - created, report,
                          errors_size, clock())  # fmt: skip
            break
        except (IntegrityError, OperationalError) as error:
            # The API created one of these people meanwhile, or a concurrent batch took
            # the same rows in another order (deadlock): again, it finds them now.
            if attempt == 2 or not _again(error):
                raise
    report.created += created
    report.updated += len(results) - created


def _again(error: IntegrityError | OperationalError) -> bool:
    if isinstance(error, IntegrityError):
        return True
    return getattr(error.orig, "sqlstate", None) in ("40P01", "40001")  # deadlock, serialization


def _progress(
    session: Session,
    run: ImportRun,
    lines: _Lines,
    created: int,
    updated: int,
    report: ImportReport,
    errors_size: int,
    now: datetime,
) -> None:
    session.execute(
        update(ImportRun)
        .where(ImportRun.id == run.id)
        .values(
            offset=lines.read, line=lines.number, created=report.created + created,
            updated=report.updated + updated,
            refused=report.refused_before + len(report.refused), errors_size=errors_size,
            updated_at=now,
        )
    )  # fmt: skip
