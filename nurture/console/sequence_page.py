"""One sequence's page, gathered: the drawn version and its flow diagram with counts,
the per-step figures for a period, the versions and what changed between two, and
the email previews for a chosen lead. No Flask here: `args` are the page's query
parameters, `now` the request's time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.console.sequence_figures import Figures, figures, step_figures
from nurture.console.sequence_list import (
    Counts,
    concerning,
    enrollment_counts,
    stored_versions,
    templates_of,
    validation_problems,
)
from nurture.console.sequence_preview import (
    SAMPLE,
    Found,
    Preview,
    Reader,
    previews,
    reader,
    search,
)
from nurture.console.sequence_versions import Comparison, Version, compare, history, parsed, pick
from nurture.content import Content
from nurture.core.access import Account
from nurture.core.flow import Flow, layout
from nurture.core.problems import Problem
from nurture.core.reports import Period, ReportError, parse_date
from nurture.core.sequences import EmailStep, Sequence
from nurture.core.tables import Table

PERIOD_DAYS = 90


@dataclass(frozen=True)
class Page:
    sequence: Sequence  # the version drawn
    live: Sequence | None
    flow: Flow
    figures: Figures
    counts: Counts
    problems: tuple[Problem, ...]
    period: Period
    period_problem: str | None
    table: Table
    versions: tuple[Version, ...]
    comparison: Comparison | None
    searched: str
    found: tuple[Found, ...]
    reader: Reader
    reader_problem: str | None
    previews: tuple[tuple[EmailStep, list[Preview]], ...]


def default_period(now: datetime) -> Period:
    """The last PERIOD_DAYS UTC days, today included."""
    today = now.astimezone(UTC).date()
    return Period(today - timedelta(days=PERIOD_DAYS - 1), today)


def period_of(args: Mapping[str, str], now: datetime) -> tuple[Period, str | None]:
    """The period asked for, or the default one and what is wrong with the request."""
    default = default_period(now)
    first, last = args.get("from"), args.get("to")
    if not first and not last:
        return default, None
    try:
        period = Period(
            parse_date(first, "from") if first else default.first,
            parse_date(last, "to") if last else default.last,
        )
    except ReportError as error:
        return default, str(error)
    if period.first > period.last:
        return default, f"from {period.first} is after to {period.last}"
    return period, None


def drawn(session: Session, content: Content, sequence_id: str,
          versions: list[Version], asked: str | None) -> Sequence | None:  # fmt: skip
    """The version to draw: the one asked for, else the live one, else the latest
    stored one that still parses."""
    known = {v.version for v in versions}
    if asked in known:
        found = parsed(session, content, sequence_id, asked)
        if found is not None:
            return found
    live = content.get(sequence_id)
    if live is not None:
        return live
    for version in reversed(versions):
        found = parsed(session, content, sequence_id, version.version)
        if found is not None:
            return found
    return None


def build(
    session: Session,
    content: Content,
    settings: Settings,
    user: Account,
    sequence_id: str,
    args: Mapping[str, str],
    now: datetime,
) -> Page | None:
    """The page of `sequence_id`, or None when the engine knows no such sequence."""
    versions = history(session, content, sequence_id)
    sequence = drawn(session, content, sequence_id, versions, args.get("version"))
    if sequence is None:
        return None
    live = content.get(sequence_id)
    kept = stored_versions(session).get(sequence_id)
    paths = {p for p in (sequence.path, live and live.path, kept and kept.path) if p}
    problems = concerning(
        validation_problems(content, settings), paths, templates_of(sequence),
        settings.templates_dir,
    )  # fmt: skip
    period, period_problem = period_of(args, now)
    comparison = None
    if len(versions) > 1:
        older, newer = pick(versions, args.get("a"), args.get("b"))
        comparison = compare(session, content, sequence_id, older, newer)
    searched = args.get("q", "").strip()
    who = reader(session, user, args.get("lead"))
    chosen = who or SAMPLE
    return Page(
        sequence=sequence,
        live=live,
        flow=layout(sequence),
        figures=figures(session, sequence),
        counts=enrollment_counts(session, sequence_id).get(sequence_id, Counts()),
        problems=problems,
        period=period,
        period_problem=period_problem,
        table=step_figures(session, sequence, period),
        versions=tuple(versions),
        comparison=comparison,
        searched=searched,
        found=tuple(search(session, user, searched)),
        reader=chosen,
        reader_problem=None if who else "No such lead: the sample lead is shown instead.",
        previews=tuple(previews(content, settings, sequence, chosen)),
    )
