"""The authored content a process works with: live sequences, pinned versions, templates.

Live sequences come from `sequences/` (reloaded when a file changes); every version
ever loaded is stored, so an enrollment keeps following the version it entered, and
renders the template versions pinned to it (nurture/template_pins.py).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from nurture.core.problems import Problem
from nurture.core.qualification import QualificationModel
from nurture.core.qualification_parser import load_qualification
from nurture.core.rendering import TemplateCatalog
from nurture.core.routing import RoutingModel
from nurture.core.routing_parser import load_routing
from nurture.core.scoring import ScoringModel
from nurture.core.scoring_parser import load_scoring
from nurture.core.sequence_parser import load_directory, parse_sequence
from nurture.core.sequences import Sequence
from nurture.models import SequenceVersion
from nurture.template_pins import TemplatePins

log = logging.getLogger(__name__)


def _stamp(path: Path | None) -> tuple[float, int] | None:
    if path is None or not path.exists():
        return None
    found = path.stat()
    return (found.st_mtime, found.st_size)


class UnknownVersion(LookupError):
    """An enrollment points at a sequence version that was never stored."""


class Content:
    def __init__(
        self,
        sequences_dir: Path,
        templates_dir: Path,
        default_locale: str = "en",
        scoring_file: Path | None = None,
        routing_file: Path | None = None,
        qualification_file: Path | None = None,
    ):
        self.sequences_dir = sequences_dir
        self.scoring_file = scoring_file
        self.routing_file = routing_file
        self.qualification_file = qualification_file
        self.qualification: QualificationModel | None = None
        self.scoring: ScoringModel | None = None
        self.routing: RoutingModel | None = None
        self.rule_problems: tuple[Problem, ...] = ()
        self._rules_stamp: tuple[tuple[float, int] | None, ...] | None = None
        self.templates = TemplateCatalog(templates_dir, default_locale=default_locale)
        self.pins = TemplatePins(self.templates)
        self._lock = threading.Lock()
        self._live: dict[str, Sequence] = {}
        self._pinned: dict[tuple[str, str], Sequence] = {}
        # (database, sequence id, version) known stored: each batch of an import and each
        # tick records the live versions, and sending their sources every time cost more
        # than the rest of a small batch.
        self._stored: set[tuple[str, str, str]] = set()
        self._stamp: tuple[tuple[str, float, int], ...] | None = None
        self.problems: tuple[Problem, ...] = ()
        self.reload()

    def _files_stamp(self) -> tuple[tuple[str, float, int], ...]:
        if not self.sequences_dir.is_dir():
            return ()
        files = sorted(
            p for p in self.sequences_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
        )
        return tuple((p.name, p.stat().st_mtime, p.stat().st_size) for p in files)

    def _reload_rules(self) -> None:
        files = (self.scoring_file, self.routing_file, self.qualification_file)
        stamp = tuple(_stamp(path) for path in files)
        if stamp == self._rules_stamp:
            return
        problems: list[Problem] = []
        if self.scoring_file is not None and self.scoring_file.exists():
            scored = load_scoring(self.scoring_file)
            problems += scored.problems
            self.scoring = scored.model
        else:
            self.scoring = None
        if self.routing_file is not None and self.routing_file.exists():
            routed = load_routing(self.routing_file)
            problems += routed.problems
            self.routing = routed.model
        else:
            self.routing = None
        if self.qualification_file is not None and self.qualification_file.exists():
            qualified = load_qualification(self.qualification_file)
            problems += qualified.problems
            self.qualification = qualified.model
        else:
            self.qualification = None
        self.rule_problems = tuple(problems)
        self._rules_stamp = stamp

    def reload(self) -> bool:
        """Re-read the sequence files if any changed; True when something was reloaded."""
        self.templates.refresh()
        self.pins.refresh()
        self._reload_rules()
        stamp = self._files_stamp()
        with self._lock:
            if stamp == self._stamp:
                return False
            catalog = load_directory(self.sequences_dir, self.templates)
            self._live = dict(catalog.sequences)
            for seq in catalog.sequences.values():
                self._pinned[(seq.id, seq.version)] = seq
            self.problems = catalog.problems
            self._stamp = stamp
        for problem in catalog.problems:  # a refused file stays refused until fixed
            log.warning("sequence file refused: %s", problem)
        return True

    def live(self) -> tuple[Sequence, ...]:
        return tuple(self._live.values())

    def refused(self, sequence_id: str) -> tuple[Problem, ...]:
        """The problems of the file `sequence_id` would be read from (`<id>.yaml` or
        `.yml`), had it been loaded: why a sequence someone asks for is not live."""
        return tuple(p for p in self.problems if Path(p.path).stem == sequence_id)

    def missing(self, sequence_id: str) -> str:
        """Why `sequence_id` is not live, in one message for a person: its file's
        problems with file:line, or the sequences that are."""
        problems = self.refused(sequence_id)
        if problems:
            return (
                f"sequence {sequence_id!r} is not live: its file was refused:\n  "
                + "\n  ".join(map(str, problems))
                + "\n(fix it; `nurture validate` checks every file)"
            )
        known = ", ".join(sorted(s.id for s in self.live())) or "none"
        return f"unknown sequence {sequence_id!r}; the live ones: {known}"

    def get(self, sequence_id: str) -> Sequence | None:
        return self._live.get(sequence_id)

    def store_versions(self, session: Session, now: datetime) -> None:
        """Record every live version (idempotent, safe from many processes at once), each
        pinned, the first time, to the template versions on disk."""
        self.pins.publish(session, self._live.values(), now)
        database = session.get_bind().engine.url.render_as_string(hide_password=True)
        fresh = [s for s in self._live.values() if (database, s.id, s.version) not in self._stored]
        rows = [
            {
                "sequence_id": s.id,
                "version": s.version,
                "path": s.path,
                "source": s.source,
                "loaded_at": now,
            }
            for s in fresh
        ]
        if not rows:
            return
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(SequenceVersion).values(rows)
        session.execute(statement.on_conflict_do_nothing(index_elements=["sequence_id", "version"]))
        keys = {(database, s.id, s.version) for s in fresh}
        event.listen(session, "after_commit", lambda _: self._stored.update(keys), once=True)

    def forget_stored(self) -> None:
        """Look in the database again for the versions and pins it holds (the tables
        were emptied under this process)."""
        self._stored.clear()
        self.pins.forget_published()

    def pinned(self, session: Session, sequence_id: str, version: str) -> Sequence:
        """The exact version an enrollment entered, from memory or from the database."""
        key = (sequence_id, version)
        found = self._pinned.get(key)
        if found is not None:
            return found
        row = session.scalar(
            select(SequenceVersion).where(
                SequenceVersion.sequence_id == sequence_id, SequenceVersion.version == version
            )
        )
        if row is None:
            raise UnknownVersion(f"sequence {sequence_id} version {version} was never stored")
        # Templates were checked when this version was live; re-checking could refuse it now.
        result = parse_sequence(row.source, row.path, None)
        if result.sequence is None:
            raise UnknownVersion(f"stored sequence {sequence_id}@{version} no longer parses")
        with self._lock:
            self._pinned[key] = result.sequence
        return result.sequence
