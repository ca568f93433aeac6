"""The list of leads: its search, filters and sort orders, one page at a time by keyset
(docs/console-leads.md). No Flask here: the page's arguments come in as a `ListQuery`.

A page is found by where the previous one ended — the sort value and the lead's id,
carried in the `after` (or `before`) cursor — never by an OFFSET: page 2,000 costs
what page 1 costs, and a lead added meanwhile shifts nothing. A nullable sort column
is read in two segments (the leads with a value, then those without, or the other
way round going down), each a range of its index, so no page ever walks the rows
before it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, func, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from nurture.console.users import visible_leads
from nurture.core.access import Account
from nurture.core.qualification import CATEGORIES
from nurture.core.scoring import GRADES
from nurture.core.sequences import STAGES
from nurture.models import Enrollment, Lead

PAGE_SIZE = 50
NONE = "none"  # the filter value for "no grade", "no category", "no rep"
MAX_TERM = 100


class ListError(ValueError):
    """The list cannot be shown with these arguments; the message says which and why."""


@dataclass(frozen=True)
class Sort:
    column: InstrumentedAttribute[Any]
    direction: str  # the natural one: asc | desc
    label: str
    nullable: bool = False


SORTS: dict[str, Sort] = {
    "created": Sort(Lead.created_at, "desc", "Date added"),
    "score": Sort(Lead.score, "desc", "Score"),
    "grade": Sort(Lead.grade, "asc", "Grade", nullable=True),
    "name": Sort(Lead.last_name, "asc", "Last name", nullable=True),
    "company": Sort(Lead.company, "asc", "Company", nullable=True),
    "email": Sort(Lead.email, "asc", "Email"),
}
DIRECTIONS = ("asc", "desc")


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the sort value of a lead and its id."""

    sort: str
    direction: str
    value: Any
    id: int

    def encoded(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        raw = json.dumps([self.sort, self.direction, value, self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_cursor(text: str, sort: str, direction: str) -> Cursor:
    """The cursor a link carried, checked against the list's sort order."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        kept, way, value, lead_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise ListError("this page link is damaged: start again from the first page") from None
    if (kept, way) != (sort, direction):
        raise ListError("this page link belongs to another sort order: start from the first page")
    column = SORTS[sort]
    good = isinstance(lead_id, int) and not isinstance(lead_id, bool)
    if value is None:
        good = good and column.nullable
    elif sort == "created":
        good = good and isinstance(value, str) and _instant(value) is not None
        value = _instant(value) if good else None
    elif sort == "score":
        good = good and isinstance(value, int) and not isinstance(value, bool)
    else:
        good = good and isinstance(value, str)
    if not good:
        raise ListError("this page link is damaged: start again from the first page")
    return Cursor(sort, direction, value, lead_id)


def _instant(text: str) -> datetime | None:
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


@dataclass(frozen=True)
class ListQuery:
    """What the list was asked for (the page's URL arguments, checked)."""

    q: str = ""
    stage: str = ""
    grade: str = ""
    category: str = ""
    source: str = ""
    rep: str = ""
    sequence: str = ""
    sort: str = "created"
    direction: str = "desc"
    after: Cursor | None = None
    before: Cursor | None = None


def list_query(args: dict[str, str], sequences: tuple[str, ...]) -> ListQuery:
    """Check the URL's arguments; a ListError names the first one that is wrong."""
    sort = args.get("sort") or "created"
    if sort not in SORTS:
        raise ListError(f"unknown sort {sort!r}: expected one of {', '.join(SORTS)}")
    direction = args.get("dir") or SORTS[sort].direction
    if direction not in DIRECTIONS:
        raise ListError(f"unknown direction {direction!r}: expected asc or desc")
    choices = {
        "stage": STAGES,
        "grade": (*GRADES, NONE),
        "category": (*CATEGORIES, NONE),
        "sequence": sequences,
    }
    for name, allowed in choices.items():
        value = args.get(name) or ""
        if value and value not in allowed:
            raise ListError(f"unknown {name} {value!r}: expected one of {', '.join(allowed)}")
    q = " ".join((args.get("q") or "").split())
    if len(q) > MAX_TERM:
        raise ListError(f"the search is longer than {MAX_TERM} characters")
    after, before = args.get("after"), args.get("before")
    if after and before:
        raise ListError("a page link has either `after` or `before`, not both")
    return ListQuery(
        q=q,
        stage=args.get("stage") or "",
        grade=args.get("grade") or "",
        category=args.get("category") or "",
        source=(args.get("source") or "").strip()[:100],
        rep=(args.get("rep") or "").strip().lower()[:320],
        sequence=args.get("sequence") or "",
        sort=sort,
        direction=direction,
        after=parse_cursor(after, sort, direction) if after else None,
        before=parse_cursor(before, sort, direction) if before else None,
    )


@dataclass(frozen=True)
class LeadRow:
    public_id: str
    name: str | None
    email: str
    company: str | None
    stage: str
    score: int
    grade: str | None
    category: str | None
    source: str | None
    rep_email: str | None
    created_at: datetime
    sequences: tuple[str, ...]  # active enrollments: "sequence / step"


@dataclass(frozen=True)
class ListPage:
    rows: tuple[LeadRow, ...]
    next: str | None  # the `after` cursor of the following page
    previous: str | None  # the `before` cursor of the page before


def _prefix(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _filters(query: ListQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    # Prefix search, each word on the address, the names or the company (any case):
    # on PostgreSQL each is a range of its own index (migration 0013).
    for word in query.q.split():
        pattern = _prefix(word)
        where.append(
            or_(
                func.lower(Lead.email).like(pattern, escape="\\"),
                func.lower(Lead.first_name).like(pattern, escape="\\"),
                func.lower(Lead.last_name).like(pattern, escape="\\"),
                func.lower(Lead.company).like(pattern, escape="\\"),
            )
        )
    for name, column in (
        ("stage", Lead.stage),
        ("grade", Lead.grade),
        ("category", Lead.category),
        ("source", Lead.source),
    ):
        value = getattr(query, name)
        if value == NONE and name in ("grade", "category"):
            where.append(column.is_(None))
        elif value:
            where.append(column == value)
    if query.rep == NONE:
        where.append(Lead.rep_email.is_(None))
    elif query.rep:
        where.append(func.lower(Lead.rep_email) == query.rep)
    if query.sequence:
        enrolled = select(Enrollment.lead_id).where(Enrollment.sequence_id == query.sequence)
        where.append(Lead.id.in_(enrolled))
    return where


def leads_page(
    session: Session, user: Account, query: ListQuery, size: int = PAGE_SIZE
) -> ListPage:
    """One page of the leads `user` may see, as `query` asks."""
    base = visible_leads(select(Lead).where(*_filters(query)), user)
    going_back = query.before is not None
    cursor = query.before if going_back else query.after
    direction = query.direction
    if going_back:
        direction = "desc" if direction == "asc" else "asc"
    found = _walk(session, base, SORTS[query.sort], direction, cursor, size + 1)
    more = len(found) > size
    found = found[:size]
    if going_back:
        found.reverse()
    sort = SORTS[query.sort]

    def at(lead: Lead) -> str:
        return Cursor(
            query.sort, query.direction, getattr(lead, sort.column.key), lead.id
        ).encoded()

    following = preceding = None
    if found:
        if more or going_back:
            following = at(found[-1])
        if (more and going_back) or (not going_back and cursor is not None):
            preceding = at(found[0])
    return ListPage(_rows(session, found), following, preceding)


def _walk(
    session: Session,
    base: Select[Any],
    sort: Sort,
    direction: str,
    cursor: Cursor | None,
    limit: int,
) -> list[Lead]:
    """Up to `limit` leads after `cursor` in this order, segment by segment."""
    column = sort.column
    # NULL sorts after every value (PostgreSQL's own rule): last going up, first going down.
    segments = ["value", "null"] if direction == "asc" else ["null", "value"]
    if not sort.nullable:
        segments = ["value"]
    if cursor is not None:
        segments = segments[segments.index("null" if cursor.value is None else "value") :]
    found: list[Lead] = []
    for segment in segments:
        where: list[ColumnElement[bool]] = []
        if segment == "null":
            where.append(column.is_(None))
            order = [Lead.id.asc() if direction == "asc" else Lead.id.desc()]
        else:
            if sort.nullable:
                where.append(column.is_not(None))
            order = [getattr(column, direction)(), getattr(Lead.id, direction)()]
        if cursor is not None and (segment == "null") == (cursor.value is None):
            if segment == "null":
                later = Lead.id > cursor.id if direction == "asc" else Lead.id < cursor.id
            else:
                key = tuple_(column, Lead.id)
                mark = tuple_(bindparam(None, cursor.value, type_=column.type), cursor.id)
                later = key > mark if direction == "asc" else key < mark
            where.append(later)
        chunk = session.scalars(base.where(*where).order_by(*order).limit(limit - len(found)))
        found.extend(chunk)
        if len(found) >= limit:
            break
    return found


def _rows(session: Session, leads: list[Lead]) -> tuple[LeadRow, ...]:
    places: dict[int, list[str]] = defaultdict(list)
    if leads:
        for lead_id, sequence_id, step_id in session.execute(
            select(Enrollment.lead_id, Enrollment.sequence_id, Enrollment.step_id)
            .where(
                Enrollment.lead_id.in_([lead.id for lead in leads]), Enrollment.status == "active"
            )
            .order_by(Enrollment.id)
        ):
            places[lead_id].append(f"{sequence_id} / {step_id}")
    return tuple(
        LeadRow(
            public_id=lead.public_id,
            name=" ".join(filter(None, (lead.first_name, lead.last_name))) or None,
            email=lead.email,
            company=lead.company,
            stage=lead.stage,
            score=lead.score,
            grade=lead.grade,
            category=lead.category,
            source=lead.source,
            rep_email=lead.rep_email,
            created_at=lead.created_at,
            sequences=tuple(places[lead.id]),
        )
        for lead in leads
    )
