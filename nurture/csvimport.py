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
) -> ImportReport:
    report = ImportReport()
    settings = runtime.settings
    with path.open("rb") as handle:
        lines = _Lines(handle)
        reader = csv.DictReader(lines)
        try:
            header = reader.fieldnames
        except csv.Error as error:
            report.refused.append((1, f"the header row cannot be read: {error}"))
            return report
        if not header or "email" not in [f.strip() for f in header]:
            report.refused.append((1, "the header row must name an `email` column"))
            return report
        if 1 in lines.not_utf8:
            report.refused.append((1, lines.not_utf8[1]))
            return report
        chunk: list[LeadInput] = []
        seen = 0
        end = reader.line_num
        while True:
            start = end + 1  # a row may span lines (a quoted cell with line breaks)
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                end = reader.line_num
                report.refused.append((start, _unreadable(error)))
                continue
            end = reader.line_num
            wrong = next(
                (lines.not_utf8[n] for n in range(start, end + 1) if n in lines.not_utf8), None
            )
            try:
                if wrong is not None:
                    raise InvalidInput([])
                chunk.append(parse_lead(row_to_lead(row, source), "", settings.fold_subaddress))
            except InvalidInput as error:
                reason = wrong or str(error) or "more cells than columns in the header"
                report.refused.append((start, reason))
            if len(chunk) >= CHUNK:
                _store(runtime, chunk, now, report)
                chunk = []
            if progress is not None:
                progress(lines.read - seen)
                seen = lines.read
        if chunk:
            _store(runtime, chunk, now, report)
    return report


def _unreadable(error: csv.Error) -> str:
    if "field larger than field limit" in str(error):
        return f"a cell longer than {csv.field_size_limit():,} characters"
    return f"not readable as CSV: {error}"


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
