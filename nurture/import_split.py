"""One CSV import shared among several processes (`nurture leads import FILE --jobs N`).

Each process reads the whole file and takes the rows of its share of the people
(nurture.csvimport.Share: the normalised address hashed, so a person's rows stay in
one process, in file order), committing its chunks with its own progress row in
`import_runs`. PostgreSQL only: SQLite takes one writer at a time.

An interrupted split import resumes as it was started: every part after its own last
committed chunk. The parts' bad rows are merged, by line, into FILE.errors.csv once
every part is done; only then is the import marked finished, so a stop between the
two is resumed too (the parts find nothing left to read, and the merge is done).
"""

from __future__ import annotations

import csv
import multiprocessing
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from nurture.config import Settings
from nurture.csvimport import (
    ERRORS_HEADER,
    ImportReport,
    NothingToResume,
    Share,
    errors_path,
    finish,
    header_problem,
    import_csv,
    read_part,
    start,
)
from nurture.models import ImportRun
from nurture.runtime import Runtime

POLL = 0.5  # seconds between two looks at the parts' progress


class CannotSplit(Exception):
    """An import cannot be shared among processes here (SQLite, a bad --jobs)."""


class PartFailed(Exception):
    """A part stopped on an error; what it committed stays, and --resume goes on."""


def import_file(
    runtime: Runtime,
    path: Path,
    now: datetime,
    source: str | None = None,
    progress: Callable[[int], None] | None = None,
    resume: bool = False,
    jobs: int | None = None,
) -> ImportReport:
    """Import the file in `jobs` processes (one when None or 1), or resume the latest
    interrupted import of it as it was started. `progress` is told the bytes read, as
    the mean of the parts' committed positions."""
    path = path.resolve()
    if jobs is not None and jobs < 1:
        raise CannotSplit("--jobs takes a number of processes from 1")
    split = jobs is not None and jobs > 1
    if resume:
        parts = _interrupted_parts(runtime, path)
        if parts is not None and jobs is not None and jobs != parts:
            raise NothingToResume(
                f"the interrupted import of {path} ran as {parts} process(es)"
                f" (--jobs {parts}): resume it with the same --jobs, or without"
            )
        split = parts is not None and parts > 1
    if not split or header_problem(path) is not None:
        return import_csv(runtime, path, now, source, progress, resume)
    if runtime.engine.dialect.name != "postgresql":
        raise CannotSplit(
            "--jobs needs PostgreSQL: SQLite takes one writer at a time (import without --jobs)"
        )
    runs = start(runtime, path, now, resume, jobs)
    reports = _run_parts(runtime, path, now, source, runs, progress)
    report = _merged(path, reports, len(runs))
    finish(runtime, [run.id for run in runs], now)
    return report


def _interrupted_parts(runtime: Runtime, path: Path) -> int | None:
    """How many parts the latest interrupted import of the file has (None: there is none)."""
    with runtime.sessions() as session:
        parts = session.scalar(
            select(ImportRun.parts)
            .where(ImportRun.file == str(path), ImportRun.finished_at.is_(None))
            .order_by(ImportRun.id.desc())
            .limit(1)
        )
    return parts


def _run_parts(
    runtime: Runtime,
    path: Path,
    now: datetime,
    source: str | None,
    runs: list[ImportRun],
    progress: Callable[[int], None] | None,
) -> list[ImportReport]:
    """Each part in its own process (spawned: nothing of this one's connections is
    inherited); the parts' progress polled from the database meanwhile."""
    count = len(runs)
    context = multiprocessing.get_context("spawn")
    # Ctrl-C reaches every process of the terminal: the parts ignore it and are stopped
    # by this one as it leaves the block (their open chunks roll back).
    with context.Pool(count, initializer=_ignore_interrupts) as pool:
        pending = [
            pool.apply_async(
                _part, (runtime.settings, str(path), now, source, run.id, Share(run.part, count))
            )
            for run in runs
        ]
        told = _told(runtime, runs, 0, progress, first=True)
        while not all(result.ready() for result in pending):
            failed = [r for r in pending if r.ready() and not r.successful()]
            if failed:
                failed[0].get()  # raises the part's error; leaving the block stops the rest
            time.sleep(POLL)
            told = _told(runtime, runs, told, progress)
        reports = [result.get() for result in pending]
    _told(runtime, runs, told, progress)
    return reports


def _told(
    runtime: Runtime,
    runs: list[ImportRun],
    told: int,
    progress: Callable[[int], None] | None,
    first: bool = False,
) -> int:
    """Tell `progress` how far the parts have committed since `told` bytes; on a resume's
    first call, where they stand (as a single import's first call does)."""
    if progress is None:
        return told
    with runtime.sessions() as session:
        offsets = list(
            session.scalars(
                select(ImportRun.offset).where(ImportRun.id.in_([run.id for run in runs]))
            )
        )
    mean = sum(offsets) // len(runs)
    if mean > told or (first and mean):
        progress(mean - told)
    return max(mean, told)


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _part(
    settings: Settings,
    path: str,
    now: datetime,
    source: str | None,
    run_id: int,
    share: Share,
) -> ImportReport:
    """One part, in its own process."""
    runtime = Runtime(settings)
    try:
        with runtime.sessions() as session:
            run = session.get_one(ImportRun, run_id)
        return read_part(runtime, Path(path), now, source, run, share)
    except Exception as error:  # the original may not cross back to the parent intact
        raise PartFailed(
            f"part {share.index + 1} of {share.count}: {type(error).__name__}: {error}"
        ) from None
    finally:
        runtime.close()


def _merged(path: Path, reports: list[ImportReport], count: int) -> ImportReport:
    """The parts' reports as one, and their errors files as FILE.errors.csv, by line."""
    report = ImportReport(
        created=sum(r.created for r in reports),
        updated=sum(r.updated for r in reports),
        refused=sorted(refused for r in reports for refused in r.refused),
        refused_before=sum(r.refused_before for r in reports),
    )
    resumed = [r.resumed_at for r in reports if r.resumed_at is not None]
    report.resumed_at = min(resumed) if resumed else None
    listed: list[tuple[int, str]] = []
    parts = [errors_path(path, Share(index, count)) for index in range(count)]
    for part in parts:
        if part.exists():
            with part.open(encoding="utf-8", newline="") as handle:
                rows = csv.reader(handle)
                next(rows, None)  # the header
                listed.extend((int(line), reason) for line, reason in rows)
    target = errors_path(path)
    if listed:
        with target.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(ERRORS_HEADER)
            writer.writerows(sorted(listed))
        report.errors_file = target
    else:
        target.unlink(missing_ok=True)
    for part in parts:
        part.unlink(missing_ok=True)
    return report
