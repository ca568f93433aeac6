"""CSV import: streamed in chunks (one transaction each), every bad row reported with
its line number and reason, and safe to run again (rows are upserts by email).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.exc import IntegrityError

from nurture.core.intake import InvalidInput, LeadInput, parse_lead
from nurture.intake import take_many
from nurture.runtime import Runtime

CHUNK = 500


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


class _Counting:
    """A text file that tells how many bytes were read, for the progress bar."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.read = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.handle:
            self.read += len(line.encode("utf-8"))
            yield line


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
) -> ImportReport:
    report = ImportReport()
    settings = runtime.settings
    with path.open(newline="", encoding="utf-8-sig") as handle:
        counting = _Counting(handle)
        reader = csv.DictReader(counting)
        if not reader.fieldnames or "email" not in [f.strip() for f in reader.fieldnames]:
            report.refused.append((1, "the header row must name an `email` column"))
            return report
        chunk: list[LeadInput] = []
        seen = 0
        for row in reader:
            line = reader.line_num
            try:
                chunk.append(parse_lead(row_to_lead(row, source), "", settings.fold_subaddress))
            except InvalidInput as error:
                reason = str(error) or "more cells than columns in the header"
                report.refused.append((line, reason))
            if len(chunk) >= CHUNK:
                _store(runtime, chunk, now, report)
                chunk = []
            if progress is not None:
                progress(counting.read - seen)
                seen = counting.read
        if chunk:
            _store(runtime, chunk, now, report)
    return report


def _store(runtime: Runtime, chunk: list[LeadInput], now: datetime, report: ImportReport) -> None:
    for attempt in range(3):
        try:
            with runtime.sessions.begin() as session:
                results = take_many(
                    session, runtime.content, runtime.settings, chunk, now, "csv import"
                )
            break
        except IntegrityError:  # the API created one of these people meanwhile: again
            if attempt == 2:
                raise
    report.created += sum(1 for _, created in results if created)
    report.updated += sum(1 for _, created in results if not created)
