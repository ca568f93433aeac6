"""Template versions and the pins that tie each sequence version to them.

A template version is one email folder (`emails/<name>/`, every locale and its CSS)
together with the layouts, hashed: editing any of those files makes a new version.
When a sequence version is first published, the template versions on disk then are
pinned to it; the dispatcher renders an enrollment's emails from its sequence
version's pins, so a template edited on disk reaches no lead until `nurture apply`
moves the pins (nurture/deployment.py). Stored files are written once to a private
folder and rendered by an ordinary `TemplateCatalog` over it.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from sqlalchemy import event, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from nurture.core.rendering import TemplateCatalog
from nurture.core.sequences import Sequence
from nurture.models import TemplatePin, TemplateVersion

Key = tuple[str, str]  # (sequence id, sequence version)


def templates_of(sequence: Sequence) -> tuple[str, ...]:
    """The template folders a sequence version sends."""
    return tuple(sorted({step.template for step in sequence.email_steps()}))


def _paths(root: Path, name: str) -> list[Path]:
    found = []
    for folder in (root / "emails" / name, root / "layouts"):
        if folder.is_dir():
            found += [
                path
                for path in sorted(folder.rglob("*"))
                if path.is_file()
                and not any(part.startswith(".") for part in path.relative_to(root).parts)
            ]
    return found


def folder_files(root: Path, name: str) -> dict[str, str]:
    """The files a template version is made of: its folder and the layouts, by path
    under the templates folder (hidden files, editor back-ups, are not part of it)."""
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8", errors="replace")
        for path in _paths(root, name)
    }


def _signature(root: Path, name: str) -> tuple[tuple[str, int, int], ...]:
    """To notice an edit without reading the files."""
    stamps = []
    for path in _paths(root, name):
        found = path.stat()
        stamps.append((path.as_posix(), found.st_mtime_ns, found.st_size))
    return tuple(stamps)


def files_version(files: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for key in sorted(files):
        text = files[key]
        digest.update(f"{key}:{len(text)}:".encode() + text.encode())
    return digest.hexdigest()[:16]


def _insert(session: Session, model: type, rows: list[dict[str, object]], keys: list[str]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(model).values(rows).on_conflict_do_nothing(index_elements=keys))


class TemplatePins:
    """What each sequence version renders, for one process."""

    def __init__(self, templates: TemplateCatalog) -> None:
        self.templates = templates  # the files on disk
        self._lock = threading.Lock()
        self._disk: dict[str, tuple[str, dict[str, str]] | None] = {}
        self._signatures: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self._known: dict[str, tuple[str, dict[str, str]]] = {}
        self._pins: dict[Key, dict[str, str]] = {}
        self._files: dict[tuple[str, str], dict[str, str]] = {}
        self._catalogs: dict[tuple[str, str], TemplateCatalog] = {}
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        # (database, sequence id, version): a process may serve more than one database.
        self._published: set[tuple[str, str, str]] = set()

    def forget_published(self) -> None:
        self._published.clear()

    def refresh(self) -> None:
        """Read the files and the pins again on next use (once per tick): an apply made
        by another process is seen from the next tick on."""
        with self._lock:
            self._disk.clear()
            self._pins.clear()

    def on_disk(self, name: str) -> tuple[str, dict[str, str]] | None:
        """The version of template `name` on disk and its files; None: no such folder."""
        with self._lock:
            if name not in self._disk:
                root = self.templates.root
                found = None
                if (root / "emails" / name).is_dir():
                    signature = _signature(root, name)
                    known = self._known.get(name)
                    if known is not None and self._signatures.get(name) == signature:
                        found = known  # touched by nobody since last read
                    else:
                        files = folder_files(root, name)
                        found = (files_version(files), files)
                        self._signatures[name] = signature
                        self._known[name] = found
                self._disk[name] = found
            return self._disk[name]

    def publish(self, session: Session, sequences: Iterable[Sequence], now: datetime) -> None:
        """Pin each sequence version, the first time it is seen, to the template versions
        on disk (idempotent, safe from many processes at once: the first pin stays)."""
        versions: dict[Key, dict[str, str]] = {}
        pins: list[dict[str, object]] = []
        database = session.get_bind().engine.url.render_as_string(hide_password=True)
        fresh = [s for s in sequences if (database, s.id, s.version) not in self._published]
        for sequence in fresh:
            for name in templates_of(sequence):
                found = self.on_disk(name)
                if found is None:
                    continue
                version, files = found
                versions[(name, version)] = files
                pins.append(
                    {
                        "sequence_id": sequence.id,
                        "version": sequence.version,
                        "template": name,
                        "template_version": version,
                        "pinned_at": now,
                    }
                )
        self.store(session, versions, now)
        _insert(session, TemplatePin, pins, ["sequence_id", "version", "template"])
        # Once published, a version's pins move only by apply: no need to look again.
        if fresh:
            keys = {(database, s.id, s.version) for s in fresh}
            event.listen(session, "after_commit", lambda _: self._published.update(keys), once=True)

    def store(
        self, session: Session, versions: Mapping[Key, Mapping[str, str]], now: datetime
    ) -> None:
        rows: list[dict[str, object]] = [
            {
                "name": name,
                "version": version,
                "files": json.dumps(dict(files), sort_keys=True),
                "first_seen_at": now,
            }
            for (name, version), files in sorted(versions.items())
        ]
        _insert(session, TemplateVersion, rows, ["name", "version"])

    def pins_of(self, session: Session, keys: Iterable[Key]) -> dict[Key, dict[str, str]]:
        """The pins of these sequence versions, from memory or in one query."""
        wanted = set(keys)
        missing = wanted - set(self._pins)
        if missing:
            found: dict[Key, dict[str, str]] = {key: {} for key in missing}
            rows = session.execute(
                select(
                    TemplatePin.sequence_id,
                    TemplatePin.version,
                    TemplatePin.template,
                    TemplatePin.template_version,
                ).where(tuple_(TemplatePin.sequence_id, TemplatePin.version).in_(sorted(missing)))
            )
            for sequence_id, version, template, template_version in rows:
                found[(sequence_id, version)][template] = template_version
            with self._lock:
                self._pins.update(found)
        return {key: self._pins[key] for key in wanted}

    def load(self, session: Session, keys: Iterable[Key]) -> None:
        """Make the templates these sequence versions are pinned to renderable without a
        session (the dispatcher calls it in the claim's transaction)."""
        needed = set()
        for pins in self.pins_of(session, keys).values():
            for name, version in pins.items():
                disk = self.on_disk(name)
                if (disk is None or disk[0] != version) and (name, version) not in self._files:
                    needed.add((name, version))
        if not needed:
            return
        rows = session.execute(
            select(TemplateVersion.name, TemplateVersion.version, TemplateVersion.files).where(
                tuple_(TemplateVersion.name, TemplateVersion.version).in_(sorted(needed))
            )
        )
        with self._lock:
            for name, version, files in rows:
                self._files[(name, version)] = json.loads(files)

    def catalog(self, sequence_id: str, version: str, template: str) -> TemplateCatalog:
        """The catalog that renders `template` as sequence version `version` is pinned
        to: the files on disk when they are that version (or nothing is pinned yet)."""
        pinned = self._pins.get((sequence_id, version), {}).get(template)
        if pinned is None:
            return self.templates
        disk = self.on_disk(template)
        if disk is not None and disk[0] == pinned:
            return self.templates
        with self._lock:
            found = self._catalogs.get((template, pinned))
            if found is not None:
                return found
            files = self._files.get((template, pinned))
            if files is None:  # never loaded for this process: the disk is all there is
                return self.templates
            if self._folder is None:
                self._folder = tempfile.TemporaryDirectory(prefix="nurture-templates-")
            root = Path(self._folder.name) / f"{template}@{pinned}"
            for relative, text in files.items():
                path = root / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            found = TemplateCatalog(root, default_locale=self.templates.default_locale)
            self._catalogs[(template, pinned)] = found
            return found

    def repin(
        self,
        session: Session,
        sequence_id: str,
        version: str,
        templates: Iterable[str],
        now: datetime,
    ) -> list[tuple[str, str | None, str]]:
        """Pin a sequence version to the versions of `templates` on disk now (the
        templates whose folder is gone stay as they are): (template, from, to) moved."""
        current = self.pins_of(session, [(sequence_id, version)])[(sequence_id, version)]
        moved = []
        for name in sorted(set(templates)):
            disk = self.on_disk(name)
            if disk is None or current.get(name) == disk[0]:
                continue
            self.store(session, {(name, disk[0]): disk[1]}, now)
            if name in current:
                session.execute(
                    update(TemplatePin)
                    .where(
                        TemplatePin.sequence_id == sequence_id,
                        TemplatePin.version == version,
                        TemplatePin.template == name,
                    )
                    .values(template_version=disk[0], pinned_at=now)
                )
            else:
                row = {
                    "sequence_id": sequence_id,
                    "version": version,
                    "template": name,
                    "template_version": disk[0],
                    "pinned_at": now,
                }
                _insert(session, TemplatePin, [row], ["sequence_id", "version", "template"])
            moved.append((name, current.get(name), disk[0]))
        with self._lock:
            self._pins.pop((sequence_id, version), None)
        return moved
