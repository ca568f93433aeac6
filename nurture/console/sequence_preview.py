"""Previewing a sequence's emails in the console: each email step in each locale its
template has, for a lead found by email or name (or the sample lead), rendered as
the dispatcher renders it (nurture.composing.compose) but with tracking off: every
link points at its destination (with the campaign parameters a click would add), no
open pixel, no honeypot, and nothing is written anywhere. No Flask here."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from nurture.composing import sender_of
from nurture.config import Settings
from nurture.console.users import visible_leads
from nurture.content import Content
from nurture.core.access import Account
from nurture.core.links import campaign_target, rewrite
from nurture.core.profile import SAMPLE_LEAD, LeadProfile
from nurture.core.rendering import EmailContext, RenderError
from nurture.core.sequences import EmailStep, Sequence
from nurture.leads import profile_of
from nurture.models import Lead

FOUND = 10  # leads a search shows
LONGEST_SEARCH = 100


@dataclass(frozen=True)
class Reader:
    """Whom the emails are rendered for: a lead of the database, or the sample."""

    profile: LeadProfile
    public_id: str | None = None  # None: the sample lead

    @property
    def name(self) -> str:
        lead = self.profile
        return " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.email

    @property
    def sample(self) -> bool:
        return self.public_id is None


SAMPLE = Reader(SAMPLE_LEAD)


@dataclass(frozen=True)
class Found:
    public_id: str
    email: str
    name: str | None
    company: str | None
    locale: str | None


@dataclass(frozen=True)
class Preview:
    step: EmailStep
    locale: str  # the template's locale folder
    theirs: bool  # the one this lead would get (their locale, or its fallback)
    subject: str = ""
    html: str = ""
    text: str = ""
    links: tuple[str, ...] = ()  # where its links lead, in order
    problem: str | None = None  # why it could not be rendered


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(session: Session, user: Account, text: str) -> list[Found]:
    """Leads whose email, first name or last name begins with `text` (case aside), or,
    for two words, whose first and last names begin with them; the first FOUND by
    email. Prefixes of lower-cased columns: what the leads list's indexes serve."""
    words = text.strip()[:LONGEST_SEARCH].lower().split()
    if not words:
        return []

    def starts(column: Any, word: str) -> ColumnElement[bool]:
        return func.lower(column).like(f"{_like(word)}%", escape="\\")

    whole = " ".join(words)
    matching = [starts(Lead.email, whole)]
    if len(words) == 1:
        matching += [starts(Lead.first_name, whole), starts(Lead.last_name, whole)]
    else:
        first, last = words[0], " ".join(words[1:])
        matching += [
            and_(starts(Lead.first_name, first), starts(Lead.last_name, last)),
            and_(starts(Lead.last_name, first), starts(Lead.first_name, last)),
            starts(Lead.last_name, whole),  # a last name of two words
        ]
    query = select(Lead).where(or_(*matching)).order_by(Lead.email).limit(FOUND)
    return [
        Found(lead.public_id, lead.email, " ".join(p for p in (lead.first_name, lead.last_name)
              if p) or None, lead.company, lead.locale)
        for lead in session.scalars(visible_leads(query, user))
    ]  # fmt: skip


def reader(session: Session, user: Account, public_id: str | None) -> Reader | None:
    """The lead with this public id (None: the sample), or None when there is no such
    lead the user may see."""
    if not public_id:
        return SAMPLE
    lead = session.scalar(visible_leads(select(Lead).where(Lead.public_id == public_id), user))
    return None if lead is None else Reader(profile_of(lead), lead.public_id)


def render(
    content: Content, settings: Settings, sequence: Sequence, step: EmailStep,
    who: Reader, locale: str,
) -> Preview:  # fmt: skip
    """One email as `who` would get it in `locale`: the dispatcher's context and
    template, then each link pointed at its destination instead of the click route."""
    templates = content.templates
    try:
        theirs = templates.resolve_locale(step.template, who.profile.locale) == locale
    except RenderError:
        theirs = False
    base = settings.base_url
    profile = replace(who.profile, locale=locale)
    context = EmailContext(
        lead=profile,
        rep=profile.rep,
        sender=sender_of(settings),
        unsubscribe_url=f"{base}/u/preview",  # as `nurture preview` does: a dead link
        sequence=sequence.id,
        step=step.id,
        subject_override=step.subject,
    )
    try:
        rendered = templates.render(step.template, locale, context)
    except RenderError as error:
        return Preview(step, locale, theirs, problem=str(error))
    direct = rewrite(
        rendered.html,
        rendered.text,
        lambda index, url: campaign_target(url, sequence.id, step.id),
        None,  # no open pixel
        None,  # no honeypot
        keep=lambda url: url.startswith(f"{base}/u/"),
    )
    targets = tuple(campaign_target(url, sequence.id, step.id) for url in direct.links)
    return Preview(step, locale, theirs, rendered.subject, direct.html, direct.text, targets)


def previews(
    content: Content, settings: Settings, sequence: Sequence, who: Reader
) -> list[tuple[EmailStep, list[Preview]]]:
    """Each email step, in each locale its template has."""
    found = []
    for step in sequence.email_steps():
        locales = content.templates.locales(step.template)
        found.append(
            (step, [render(content, settings, sequence, step, who, loc) for loc in locales])
        )
    return found
