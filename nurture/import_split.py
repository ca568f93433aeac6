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
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from multiprocessing.queues import Queue
from pathlib import Path

from sqlalchemy import select

from nurture.config import Settings
from nurture.csvimport import (
    ERRORS_HEADER,
    ImportReport,
    Share,
    errors_path,
    finish,
    header_problem,
    import_csv,
    interrupted,
    other_jobs,
    read_part,
    start,
)
from nurture.models import ImportRun
from nurture.runtime import Runtime

POLL = 0.5  # seconds between two looks at the parts' progress
PR_SET_PDEATHSIG = 1  # prctl(2)


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
        with runtime.sessions() as session:
            latest = interrupted(session, path)
        if latest is not None and jobs is not None and jobs != latest.parts:
            raise other_jobs(path, latest.parts)
        split = latest is not None and latest.parts > 1
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


def _run_parts(
    runtime: Runtime,
    path: Path,
    now: datetime,
    source: str | None,
    runs: list[ImportRun],
    progress: Callable[[int], None] | None,
) -> list[ImportReport]:
    """Each part in its own process (spawned: nothing of this one's connections is
    inherited); their progress polled from the database meanwhile. A part that fails,
    or dies without answering (killed, out of memory), stops the others."""
    count = len(runs)
    context = multiprocessing.get_context("spawn")
    answers: Queue[tuple[int, ImportReport | str]] = context.Queue()
    parts = []
    for run in runs:
        share = Share(run.part, count)
        arguments = (runtime.settings, str(path), now, source, run.id, share, answers, os.getpid())
        parts.append(
            context.Process(target=_part, args=arguments, name=f"import part {run.part + 1}")
        )
    for part in parts:
        part.start()
    reports: dict[int, ImportReport] = {}
    try:
        told = _told(runtime, runs, 0, progress, first=True)
        while len(reports) < count:
            _answered(answers, reports, wait=POLL)
            for index, part in enumerate(parts):
                if index not in reports and not part.is_alive():
                    _answered(answers, reports, wait=1.0)  # its answer may be on its way
                    if index not in reports:
                        raise PartFailed(
                            f"part {index + 1} of {count} ended without finishing"
                            f" ({_ending(part.exitcode)})"
                        )
            told = _told(runtime, runs, told, progress)
    finally:
        # Ctrl-C reaches every process of the terminal, but the parts ignore it: they
        # stop here, whatever ended this loop (their open chunks roll back).
        for part in parts:
            if part.is_alive():
                part.terminate()
        for part in parts:
            part.join()
    _told(runtime, runs, told, progress)
    return [reports[index] for index in range(count)]


def _answered(
    answers: Queue[tuple[int, ImportReport | str]], reports: dict[int, ImportReport], wait: float
) -> None:
    """Take the parts' answers that came (waiting up to `wait` for the first); a part's
    error stops the import."""
    try:
        index, answer = answers.get(timeout=wait)
    except queue.Empty:
        return
    while True:
        if isinstance(answer, str):
            raise PartFailed(answer)
        reports[index] = answer
        try:
            index, answer = answers.get_nowait()
        except queue.Empty:
            return


def _ending(code: int | None) -> str:
    if code is not None and code < 0:
        return f"stopped by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


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


def _part(
    settings: Settings,
    path: str,
    now: datetime,
    source: str | None,
    run_id: int,
    share: Share,
    answers: Queue[tuple[int, ImportReport | str]],
    parent: int,
) -> None:
    """One part, in its own process: its report, or what stopped it, as its answer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the parts
    _die_with(parent)
    runtime = Runtime(settings)
    try:
        with runtime.sessions() as session:
            run = session.get_one(ImportRun, run_id)
        answers.put((share.index, read_part(runtime, Path(path), now, source, run, share)))
    except Exception as error:  # as text: the original may not cross back intact
        answers.put((share.index, f"part {share.index + 1} of {share.count}: "
                                  f"{type(error).__name__}: {error}"))  # fmt: skip
    finally:
        runtime.close()


def _die_with(parent: int) -> None:
    """On Linux, end this process when the one that started it ends, however it ends
    (`kill -9` included): a part left alone would go on importing unseen."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it ended before the line above
        os._exit(1)


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
