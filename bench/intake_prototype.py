"""Variants of the intake measured by `bench/intake.py --prototype ...`, next to the
engine as shipped, in the same run.

They patch the engine in the benchmark's own process (CSV import) or in each gunicorn
worker (API, through bench/intake_gunicorn.py); the engine's files are not touched.

- `row-path`: batches taken lead by lead by `nurture.intake.take_many` (about four
  ORM statements per lead), the path every batch took before the set-based intake
  (`nurture.intake_batch.take_batch`) and still the reference it is tested against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.content import Content
from nurture.core.intake import LeadInput
from nurture.intake import take_many
from nurture.intake_batch import Taken

NAMES = ("row-path",)
_originals: dict[tuple[Any, str], Any] = {}


def parse(value: str) -> tuple[str, ...]:
    names = NAMES if value == "all" else tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]} (known: {', '.join(NAMES)}, all)")
    return names


def _patch(owner: Any, name: str, replacement: Any) -> None:
    _originals.setdefault((owner, name), getattr(owner, name))
    setattr(owner, name, replacement)


def revert() -> None:
    for (owner, name), original in _originals.items():
        setattr(owner, name, original)
    _originals.clear()


def apply(names: tuple[str, ...]) -> None:
    from nurture import csvimport
    from nurture.web import api

    if "row-path" in names:
        for module in (csvimport, api):  # each holds its own name for it
            _patch(module, "take_batch", take_rows)


def take_rows(
    session: Session,
    content: Content,
    settings: Settings,
    items: list[LeadInput],
    now: datetime,
    source: str,
) -> list[Taken]:
    """The row path, answering as `take_batch` does."""
    results = take_many(session, content, settings, items, now, source)
    return [Taken(lead.public_id, lead.email, created) for lead, created in results]
