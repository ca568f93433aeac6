"""Accounts in the database: leads grouped into companies, and each account's figures.

A lead's account is set at every arrival (nurture.intake.take, and the batch path
with the same keys, nurture.intake_batch) from its `company_id` field or its email's
domain (nurture.core.accounts.account_key); `rebuild` sets it for every lead at once
(after an upgrade, or a change of the free-mail list). An account row holds only its
key; its name and figures are computed from its contacts when asked, so erasing a
lead leaves nothing of it in the account, and an account left with no contact goes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import String, and_, bindparam, delete, exists, func, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Select

from nurture.content import Content
from nurture.core.accounts import (
    DEFAULT_EVENTS,
    DEFAULT_WINDOW,
    HUMAN_ONLY,
    AccountFigures,
    AccountKey,
    Contact,
    account_key,
    figures,
    organisation_domain,
    payload_block,
)
from nurture.core.qualification import FREE_MAIL_DOMAINS
from nurture.core.scoring import Behaviour, span
from nurture.core.sequences import Duration
from nurture.db import among, skip_locked, update_rows
from nurture.leads import Draft
from nurture.models import Account, AccountPromotion, Event, Lead, UTCDateTime


def free_mail(content: Content) -> frozenset[str]:
    """The personal mailbox domains never grouped: the qualification file's list (the
    built-in one and its additions), else the built-in one."""
    model = content.qualification
    return model.free_mail_domains if model is not None else FREE_MAIL_DOMAINS


def key_of(content: Content, lead: Lead | Draft) -> AccountKey | None:
    return account_key(lead.email, lead.fields, free_mail(content))


_INSERT_KEYS = text(
    "INSERT INTO accounts (kind, value, created_at)"
    " SELECT kind, value, :now FROM unnest(:kinds, :values) WITH ORDINALITY AS t(kind, value, n)"
    " ORDER BY n ON CONFLICT (kind, value) DO NOTHING"
).bindparams(
    bindparam("kinds", type_=ARRAY(String())),
    bindparam("values", type_=ARRAY(String())),
    bindparam("now", type_=UTCDateTime()),
)


def ensure(session: Session, keys: Iterable[AccountKey], now: datetime) -> dict[AccountKey, int]:
    """The id of each account, created when new: one insert and one read for any
    number. Keys are inserted in order, so concurrent inserts wait on each other
    instead of deadlocking. On PostgreSQL the accounts are held (`FOR KEY SHARE`)
    until the caller's transaction ends, so `forget_empty` leaves them alone even
    before any of their contacts is committed."""
    asked = set(keys)
    wanted = sorted(asked)
    if not wanted:
        return {}
    for _ in range(3):
        _insert(session, wanted, now)
        query = select(Account.id, Account.kind, Account.value).where(
            among(session, Account.value, {k.value for k in asked})
        )
        # The set built once: in the comprehension it was built again for every row.
        found = {
            key: id_
            for id_, kind, value in session.execute(_held(session, query))
            if (key := AccountKey(kind, value)) in asked
        }
        if len(found) == len(asked):
            return found
        # An empty account removed by an erasure between the insert and the read.
    raise RuntimeError("accounts removed as fast as they were made")  # pragma: no cover


_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def _held(session: Session, query: _Query) -> _Query:
    """The accounts read, held (`FOR KEY SHARE`, PostgreSQL) until the transaction ends:
    `forget_empty` skips them, and other arrivals naming them are not held up."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(read=True, key_share=True)
    return query


def _insert(session: Session, wanted: list[AccountKey], now: datetime) -> None:
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        rows = [{"kind": k.kind, "value": k.value, "created_at": now} for k in wanted]
        # Parameters given apart (executemany, in order), not a VALUES clause compiled for
        # every row of the batch.
        statement = sqlite_insert(Account).on_conflict_do_nothing(index_elements=["kind", "value"])
        session.execute(statement, rows)
        return
    # Two arrays, one statement: no parameter set per account.
    values = {"kinds": [k.kind for k in wanted], "values": [k.value for k in wanted],
              "now": now}  # fmt: skip
    if not isinstance(bind, Engine):
        session.execute(_INSERT_KEYS, values)
        return
    # Committed apart, at once. Inside the caller's transaction, a batch inserting a
    # company another batch has just inserted waits until that whole batch commits:
    # the parts of an import (`--jobs N`) share companies, and waited on each other a
    # third of the time. A batch that fails after this leaves an account with no
    # contact: a key alone, shown nowhere, used by the company's next arrival (and
    # removed by `forget_empty`).
    with bind.begin() as apart:
        apart.execute(_INSERT_KEYS, values)


def assign(session: Session, content: Content, lead: Lead, now: datetime) -> None:
    """Put the lead in the account its data names (the row path's step)."""
    key = key_of(content, lead)
    if key is None:
        lead.account_id = None
        return
    query = select(Account.id).where(Account.kind == key.kind, Account.value == key.value)
    found = session.scalar(_held(session, query))
    lead.account_id = found if found is not None else ensure(session, [key], now)[key]


def forget_empty(session: Session) -> int:
    """Delete the accounts that have no contact left (after an erasure or a purge):
    a domain alone may name a one-person company. An account an arrival holds (see
    `ensure`) is skipped: its first contact is on its way."""
    empty = ~exists().where(Lead.account_id == Account.id)
    held = list(session.scalars(skip_locked(session, select(Account.id).where(empty))))
    if not held:
        return 0
    # Asked again now that they are ours: a contact committed meanwhile keeps its account.
    gone = list(session.scalars(select(Account.id).where(among(session, Account.id, held), empty)))
    if not gone:
        return 0
    for model, column in ((AccountPromotion, AccountPromotion.account_id), (Account, Account.id)):
        statement = delete(model).where(among(session, column, gone))
        session.execute(statement.execution_options(synchronize_session=False))
    return len(gone)


@dataclass(frozen=True)
class Rebuilt:
    leads: int
    moved: int
    removed: int  # accounts left with no contact

    def __str__(self) -> str:
        return (
            f"{self.leads} leads read, {self.moved} moved to another account (or none),"
            f" {self.removed} empty accounts removed"
        )


def rebuild(
    sessions: sessionmaker[Session], content: Content, now: datetime, chunk: int = 5000
) -> Rebuilt:
    """Set every lead's account from its data, chunk by chunk (one read, one insert of
    new accounts and one update per chunk); then remove the accounts left empty."""
    leads = moved = 0
    last = 0
    while True:
        with sessions.begin() as session:
            rows = session.execute(
                select(Lead.id, Lead.email, Lead.fields, Lead.account_id)
                .where(Lead.id > last)
                .order_by(Lead.id)
                .limit(chunk)
            ).all()
            if not rows:
                break
            last = rows[-1].id
            mail = free_mail(content)
            keys = {row.id: account_key(row.email, row.fields, mail) for row in rows}
            ids = ensure(session, (k for k in keys.values() if k is not None), now)
            wanted = {id_: None if key is None else ids[key] for id_, key in keys.items()}
            changes = [
                {"id": row.id, "account_id": wanted[row.id]}
                for row in rows
                if wanted[row.id] != row.account_id
            ]
            update_rows(session, Lead, changes)
            leads += len(rows)
            moved += len(changes)
    with sessions.begin() as session:
        removed = forget_empty(session)
    return Rebuilt(leads, moved, removed)


# --- figures ---------------------------------------------------------------------


def window_of(content: Content) -> tuple[Duration, tuple[str, ...]]:
    """How far back, and which events, make a contact engaged: the account rule's, else
    human clicks in the last 30 days."""
    model = content.scoring
    rule = model.account if model is not None else None
    if rule is None:
        return DEFAULT_WINDOW, DEFAULT_EVENTS
    return rule.within, rule.events


def engagement(events: Iterable[str], since: Any, until: Any) -> Any:
    """The events that make a contact engaged, as a condition: the named events within
    (since, until], opens and clicks only when a person made them (not a scanner nor a
    privacy proxy)."""
    names = sorted(set(events))
    return and_(
        Event.name.in_(names),
        or_(Event.name.not_in(sorted(HUMAN_ONLY)), Event.classification == "human"),
        Event.occurred_at > since,
        Event.occurred_at <= until,
    )


_CONTACT = (
    Lead.id,
    Lead.email,
    Lead.company,
    Lead.stage,
    Lead.grade,
    Lead.behaviour_points,
    Lead.last_activity_at,
)


def contacts(
    session: Session,
    content: Content,
    account_id: int,
    now: datetime,
    overrides: Mapping[str, Draft] | None = None,
) -> list[Contact]:
    """The account's contacts as its figures see them. `overrides`: leads as a batch
    has them in memory (by email), instead of as stored."""
    overrides = overrides or {}
    stored = [
        row
        for row in session.execute(select(*_CONTACT).where(Lead.account_id == account_id))
        if row.email not in overrides
    ]
    drafts = [d for d in overrides.values() if d.account_id == account_id]
    engaged = _engaged(session, content, [*stored, *drafts], now)
    return _contacts(stored, drafts, engaged)


def _engaged(
    session: Session, content: Content, people: Iterable[Any], now: datetime
) -> dict[int, datetime]:
    """When each of these people (stored, or drafts with an id) last engaged."""
    within, events = window_of(content)
    ids = sorted({person.id for person in people if person.id is not None})
    if not ids:
        return {}
    query = (
        select(Event.lead_id, func.max(Event.occurred_at))
        .where(among(session, Event.lead_id, ids), engagement(events, now - span(within), now))
        .group_by(Event.lead_id)
    )
    return {lead_id: at for lead_id, at in session.execute(query)}


def _contacts(
    stored: list[Any], drafts: list[Draft], engaged: dict[int, datetime]
) -> list[Contact]:
    people: list[Any] = [*stored, *drafts]
    return [
        Contact(
            lead_id=person.id,
            company=person.company,
            stage=person.stage,
            grade=person.grade,
            behaviour=Behaviour(person.behaviour_points or 0.0, person.last_activity_at),
            engaged_at=engaged.get(person.id) if person.id is not None else None,
        )
        for person in people
    ]


def figures_of(
    session: Session,
    content: Content,
    account_id: int,
    now: datetime,
    overrides: Mapping[str, Draft] | None = None,
) -> AccountFigures:
    found = contacts(session, content, account_id, now, overrides)
    return figures(found, now, content.scoring, window_of(content)[0])


def blocks(
    session: Session,
    content: Content,
    wanted: Sequence[tuple[int, AccountKey, Sequence[Draft]]],
    batch: Collection[str],
    now: datetime,
) -> list[dict[str, Any]]:
    """The account blocks of a batch's promotions in two reads, whatever their number:
    for each (account, key, its contacts among the batch's drafts then), the account as
    `block` gives it with those drafts as overrides. `batch`: every address the batch
    has in memory (its stored contacts come from the drafts instead)."""
    if not wanted:
        return []
    ids = sorted({account_id for account_id, _, _ in wanted})
    stored: dict[int, list[Any]] = {account_id: [] for account_id in ids}
    query = select(Lead.account_id, *_CONTACT).where(among(session, Lead.account_id, ids))
    for row in session.execute(query):
        if row.email not in batch:
            stored[row.account_id].append(row)
    people = [p for rows in stored.values() for p in rows]
    people += [d for _, _, drafts in wanted for d in drafts]
    engaged = _engaged(session, content, people, now)
    within = window_of(content)[0]
    found = [
        figures(_contacts(stored[account_id], list(drafts), engaged), now, content.scoring, within)
        for account_id, _, drafts in wanted
    ]
    return [
        payload_block(account_id, key, figure)
        for (account_id, key, _), figure in zip(wanted, found, strict=True)
    ]


def block(
    session: Session,
    content: Content,
    account_id: int | None,
    now: datetime,
    overrides: Mapping[str, Draft] | None = None,
) -> dict[str, Any] | None:
    """The account as a CRM push carries it (None: the lead has no account)."""
    if account_id is None:
        return None
    account = session.get(Account, account_id)
    if account is None:
        return None
    key = AccountKey(account.kind, account.value)
    return payload_block(account_id, key, figures_of(session, content, account_id, now, overrides))


# --- finding and listing -----------------------------------------------------------


def find(session: Session, name: str) -> Account | None:
    """An account by its number, its domain (or any address or sub-domain of it), or
    its company id."""
    text = name.strip()
    if text.isdigit():
        found = session.get(Account, int(text))
        if found is not None:
            return found
    for kind, value in (("domain", text.lower().rsplit("@", 1)[-1]), ("company_id", text)):
        found = session.scalar(select(Account).where(Account.kind == kind, Account.value == value))
        if found is not None:
            return found
    domain = organisation_domain(text.lower().rsplit("@", 1)[-1])
    return session.scalar(select(Account).where(Account.kind == "domain", Account.value == domain))


@dataclass(frozen=True)
class Listed:
    """One account with its figures."""

    id: int
    key: AccountKey
    figures: AccountFigures


def listing(
    session: Session, content: Content, now: datetime, limit: int = 50, engaged_only: bool = False
) -> list[Listed]:
    """Accounts with the most engaged contacts first, then the most contacts: the
    ranking is one grouped query; figures are computed for the `limit` shown."""
    within, events = window_of(content)
    engaged = (
        select(Lead.account_id, func.count(func.distinct(Event.lead_id)).label("engaged"))
        .join(Lead, Lead.id == Event.lead_id)
        .where(Lead.account_id.is_not(None), engagement(events, now - span(within), now))
        .group_by(Lead.account_id)
        .subquery()
    )
    sizes = (
        select(Lead.account_id, func.count().label("contacts"))
        .where(Lead.account_id.is_not(None))
        .group_by(Lead.account_id)
        .subquery()
    )
    ranked = (
        select(Account)
        .join(sizes, sizes.c.account_id == Account.id)
        .outerjoin(engaged, engaged.c.account_id == Account.id)
        .order_by(func.coalesce(engaged.c.engaged, 0).desc(), sizes.c.contacts.desc(), Account.id)
        .limit(limit)
    )
    if engaged_only:
        ranked = ranked.where(engaged.c.engaged > 0)
    return [
        Listed(a.id, AccountKey(a.kind, a.value), figures_of(session, content, a.id, now))
        for a in session.scalars(ranked)
    ]


# --- as shown ----------------------------------------------------------------------


def shown(account_id: int, key: AccountKey, found: AccountFigures) -> dict[str, Any]:
    """An account with its figures, as the command and the API show it."""
    return {
        **payload_block(account_id, key, found),
        "by_stage": dict(found.by_stage),
    }


def details(session: Session, content: Content, account: Account, now: datetime) -> dict[str, Any]:
    """One account: its figures, its contacts (engaged first, then by score) and the
    times the account rule promoted it."""
    key = AccountKey(account.kind, account.value)
    found = figures_of(session, content, account.id, now)
    within, events = window_of(content)
    engaged = dict(
        session.execute(
            select(Event.lead_id, func.max(Event.occurred_at))
            .join(Lead, Lead.id == Event.lead_id)
            .where(Lead.account_id == account.id, engagement(events, now - span(within), now))
            .group_by(Event.lead_id)
        ).all()
    )
    people = session.scalars(
        select(Lead).where(Lead.account_id == account.id).order_by(Lead.score.desc(), Lead.id)
    ).all()
    people = sorted(people, key=lambda lead: lead.id not in engaged)  # stable: score order kept
    promotions = session.execute(
        select(AccountPromotion, Lead.public_id)
        .outerjoin(Lead, Lead.id == AccountPromotion.lead_id)
        .where(AccountPromotion.account_id == account.id)
        .order_by(AccountPromotion.cycle)
    ).all()
    return {
        **shown(account.id, key, found),
        "people": [
            {
                "id": lead.public_id,
                "email": lead.email,
                "first_name": lead.first_name,
                "last_name": lead.last_name,
                "job_title": lead.job_title,
                "stage": lead.stage,
                "grade": lead.grade,
                "score": lead.score,
                "engaged_at": engaged[lead.id].isoformat() if lead.id in engaged else None,
            }
            for lead in people[:SHOWN_PEOPLE]
        ],
        "promotions": [
            {"cycle": row.cycle, "at": row.at.isoformat(), "reason": row.reason, "lead": lead}
            for row, lead in promotions
        ],
    }


SHOWN_PEOPLE = 200
