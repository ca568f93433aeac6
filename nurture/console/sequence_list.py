"""The Sequences list: every sequence the engine knows (live from `sequences/`, or only
stored in `sequence_versions`), its live version, its problems as `nurture validate`
prints them, and its enrollments by status. No Flask here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.content import Content, UnknownVersion
from nurture.core.problems import Problem
from nurture.core.sequences import Sequence
from nurture.models import Enrollment, SequenceVersion
from nurture.validation import check


@dataclass(frozen=True)
class Counts:
    """Enrollments of a sequence (or of one of its versions) by status."""

    entered: int = 0
    active: int = 0
    completed: int = 0
    exited: int = 0


@dataclass(frozen=True)
class Listed:
    """One row of the list: a sequence, or a file that does not load and names none
    known (`sequence_id` None)."""

    sequence_id: str | None
    name: str | None
    path: str
    live: Sequence | None  # None: its file is gone or does not load
    versions: int  # stored in the database
    last_stored: datetime | None
    counts: Counts
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class Listing:
    rows: tuple[Listed, ...]
    other_problems: tuple[Problem, ...]  # of templates no sequence uses, of the rules files


def validation_problems(content: Content, settings: Settings) -> list[Problem]:
    """What `nurture validate` reports for the folders the app runs with."""
    return list(check(content, settings).problems)


def enrollment_counts(session: Session, sequence_id: str | None = None) -> dict[str, Counts]:
    """Per sequence, its enrollments entered, active, completed and exited: one
    grouped query."""

    def status(name: str) -> ColumnElement[int]:
        return func.count(case((Enrollment.status == name, 1)))

    query = select(
        Enrollment.sequence_id,
        func.count(),
        status("active"),
        status("completed"),
        status("exited"),
    ).group_by(Enrollment.sequence_id)
    if sequence_id is not None:
        query = query.where(Enrollment.sequence_id == sequence_id)
    return {row[0]: Counts(*row[1:]) for row in session.execute(query)}


@dataclass(frozen=True)
class Stored:
    versions: int
    last_stored: datetime
    path: str  # of the version stored last
    version: str


def stored_versions(session: Session) -> dict[str, Stored]:
    """Per sequence, how many versions are stored and the one stored last."""
    ranked = (
        select(
            SequenceVersion.sequence_id,
            SequenceVersion.version,
            SequenceVersion.path,
            SequenceVersion.loaded_at,
            func.count().over(partition_by=SequenceVersion.sequence_id).label("versions"),
            func.row_number()
            .over(
                partition_by=SequenceVersion.sequence_id,
                order_by=(SequenceVersion.loaded_at.desc(), SequenceVersion.id.desc()),
            )
            .label("rank"),
        )
    ).subquery()
    query = select(
        ranked.c.sequence_id, ranked.c.versions, ranked.c.loaded_at, ranked.c.path,
        ranked.c.version,
    ).where(ranked.c.rank == 1)  # fmt: skip
    return {row[0]: Stored(*row[1:]) for row in session.execute(query)}


def templates_of(sequence: Sequence) -> frozenset[str]:
    return frozenset(step.template for step in sequence.email_steps())


def template_of(problem: Problem, templates_dir: Path) -> str | None:
    """The email template a problem is about, if it is about one."""
    try:
        parts = Path(problem.path).relative_to(templates_dir / "emails").parts
    except ValueError:
        return None
    return parts[0] if parts else None


def concerning(
    problems: Iterable[Problem], paths: Iterable[str], templates: frozenset[str], root: Path
) -> tuple[Problem, ...]:
    """The problems of these files, and of these templates."""
    files = set(paths)
    return tuple(
        p for p in problems if p.path in files or template_of(p, root) in templates
    )  # fmt: skip


def listing(session: Session, content: Content, settings: Settings) -> Listing:
    problems = validation_problems(content, settings)
    counts = enrollment_counts(session)
    stored = stored_versions(session)
    live = {s.id: s for s in content.live()}
    rows: list[Listed] = []
    claimed: set[Problem] = set()
    for sequence_id in sorted({*live, *stored, *counts}):
        sequence = live.get(sequence_id)
        kept = stored.get(sequence_id)
        latest = sequence or _latest(session, content, sequence_id, kept)
        paths = {p for p in (sequence and sequence.path, kept and kept.path) if p}
        templates = templates_of(latest) if latest else frozenset()
        own = concerning(problems, paths, templates, settings.templates_dir)
        claimed.update(own)
        rows.append(
            Listed(
                sequence_id,
                latest.name if latest else None,
                sequence.path if sequence else (kept.path if kept else ""),
                sequence,
                kept.versions if kept else 0,
                kept.last_stored if kept else None,
                counts.get(sequence_id, Counts()),
                own,
            )
        )
    files: dict[str, list[Problem]] = {}
    others: list[Problem] = []
    for problem in problems:
        if problem in claimed:
            continue
        if Path(problem.path).parent == settings.sequences_dir:
            files.setdefault(problem.path, []).append(problem)
        else:
            others.append(problem)
    for path, found in sorted(files.items()):
        rows.append(Listed(None, None, path, None, 0, None, Counts(), tuple(found)))
    return Listing(tuple(rows), tuple(others))


def _latest(
    session: Session, content: Content, sequence_id: str, kept: Stored | None
) -> Sequence | None:
    """The version stored last, parsed (a sequence that is no longer live)."""
    if kept is None:
        return None
    try:
        return content.pinned(session, sequence_id, kept.version)
    except UnknownVersion:
        return None
