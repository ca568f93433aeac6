"""What the CSV imports did and are doing, from their progress rows (`import_runs`):
the latest ones, running, interrupted or finished, with how far they are, their rate
and the time left, as `nurture leads imports` and the console's Operations page show
them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.core.tables import Table, table
from nurture.csvimport import errors_path
from nurture.models import ImportRun

# An unfinished import whose progress is older than this is called interrupted: a
# running one commits a chunk every second or so.
QUIET = timedelta(minutes=2)


@dataclass(frozen=True)
class ImportShown:
    file: str
    parts: int  # processes (--jobs)
    state: str  # running, interrupted, finished
    started_at: datetime
    updated_at: datetime  # the latest committed chunk
    read: float | None  # share of the file read, 0 to 1 (None: an import older than sizes)
    created: int
    updated: int
    refused: int
    rate: float | None  # leads per second, from its start to its latest chunk
    left: timedelta | None  # at that rate, while running

    @property
    def name(self) -> str:
        return Path(self.file).name

    @property
    def errors_file(self) -> str | None:
        return str(errors_path(Path(self.file))) if self.refused else None

    @property
    def resume(self) -> str | None:
        """The command that goes on with it, when it was interrupted."""
        if self.state != "interrupted":
            return None
        return f"nurture leads import {self.file} --resume"


def latest(session: Session, now: datetime, limit: int = 20) -> list[ImportShown]:
    """The latest imports, newest first; the parts of a split import as one."""
    rows = session.scalars(select(ImportRun).order_by(ImportRun.id.desc()).limit(limit * 8)).all()
    shown = []
    for _, group in groupby(sorted(rows, key=lambda r: (-r.id, r.part)), key=_one_import):
        parts = list(group)
        if len(parts) == parts[0].parts:  # older rows beyond the limit: left out
            shown.append(_shown(parts, now))
    return shown[:limit]


def _one_import(run: ImportRun) -> tuple[str, datetime, int]:
    """What the progress rows of one import (its parts) have in common."""
    return run.file, run.started_at, run.parts


def _shown(parts: list[ImportRun], now: datetime) -> ImportShown:
    first = parts[0]
    updated_at = max(p.updated_at for p in parts)
    finished = all(p.finished_at is not None for p in parts)
    state = "finished" if finished else "running" if now - updated_at < QUIET else "interrupted"
    size = first.size
    read = None
    if size:
        read = min(1.0, sum(p.offset for p in parts) / (size * len(parts)))
    done = sum(p.created + p.updated for p in parts)
    seconds = (updated_at - first.started_at).total_seconds()
    rate = done / seconds if seconds > 0 and done else None
    left = None
    if state == "running" and read and seconds > 0:
        left = timedelta(seconds=seconds * (1 - read) / read)
    return ImportShown(
        file=first.file,
        parts=first.parts,
        state=state,
        started_at=first.started_at,
        updated_at=updated_at,
        read=read,
        created=sum(p.created for p in parts),
        updated=sum(p.updated for p in parts),
        refused=sum(p.refused for p in parts),
        rate=rate,
        left=left,
    )


def imports_table(session: Session, now: datetime, limit: int = 20) -> Table:
    """`latest` as a report (`nurture leads imports`)."""
    columns = ("file", "processes", "state", "read %", "new", "updated", "refused",
               "leads/s", "started", "latest chunk", "time left", "next")  # fmt: skip
    rows = [
        (
            shown.file, shown.parts, shown.state,
            None if shown.read is None else round(100 * shown.read, 1),
            shown.created, shown.updated, shown.refused,
            None if shown.rate is None else round(shown.rate),
            f"{shown.started_at:%Y-%m-%d %H:%M:%S}", f"{shown.updated_at:%Y-%m-%d %H:%M:%S}",
            None if shown.left is None else _duration(shown.left),
            shown.resume or (f"bad rows: {shown.errors_file}" if shown.errors_file else ""),
        )
        for shown in latest(session, now, limit)
    ]  # fmt: skip
    notes = (
        f"as of {now:%Y-%m-%d %H:%M:%S} UTC, times in UTC; the {limit} latest imports, newest"
        " first. Running: a chunk committed in the last 2 minutes; interrupted: not finished"
        " and quiet since (the command in `next` goes on with it). leads/s: new and updated"
        " from the start to the latest chunk.",
    )
    return table("CSV imports", columns, rows, notes)


def _duration(span: timedelta) -> str:
    minutes, seconds = divmod(int(span.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
