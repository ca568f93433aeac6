"""The daily top leads: each morning, in the rep's own timezone, the few most active
leads not yet handed to sales, with the evidence behind each (once per rep per day).
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.core.routing import NoRoute, RoutingModel, SalesRep, route
from nurture.core.tables import Table, table
from nurture.leads import profile_of
from nurture.mail import Sent
from nurture.models import Digest, Lead, ScoreChange
from nurture.notices import notice
from nurture.runtime import Runtime

WINDOW = timedelta(days=7)
NURTURED = ("subscriber", "lead", "mql", "recycled")


@dataclass(frozen=True)
class TopLead:
    public_id: str
    email: str
    name: str
    company: str | None
    score: int
    gained: float
    evidence: tuple[str, ...]


def top_leads(
    session: Session, routing: RoutingModel, rep: SalesRep, now: datetime, size: int
) -> list[TopLead]:
    """The rep's most active leads of the last week that sales doesn't have yet."""
    gained = session.execute(
        select(ScoreChange.lead_id, func.sum(ScoreChange.points))
        .where(ScoreChange.at > now - WINDOW, ScoreChange.points > 0)
        .group_by(ScoreChange.lead_id)
        .order_by(func.sum(ScoreChange.points).desc())
        .limit(500)
    ).all()
    if not gained:
        return []
    leads = {
        lead.id: lead
        for lead in session.scalars(select(Lead).where(Lead.id.in_([g[0] for g in gained])))
    }
    evidence: dict[int, list[str]] = defaultdict(list)
    for lead_id, reason, at in session.execute(
        select(ScoreChange.lead_id, ScoreChange.reason, ScoreChange.at)
        .where(ScoreChange.lead_id.in_(list(leads)), ScoreChange.at > now - WINDOW)
        .order_by(ScoreChange.at.desc())
    ):
        evidence[lead_id].append(f"{at:%a %d %b}: {reason}")
    chosen: list[TopLead] = []
    for lead_id, points in gained:
        lead = leads.get(lead_id)
        if lead is None or lead.stage not in NURTURED or lead.unsubscribed_at is not None:
            continue
        try:
            rule = route(routing, profile_of(lead), {})
        except NoRoute:
            continue
        owners = next((r.reps for r in routing.rules if r.name == rule.rule), (rule.rep,))
        if rep.email not in {owner.email for owner in owners}:
            continue
        name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.email
        chosen.append(
            TopLead(
                lead.public_id,
                lead.email,
                name,
                lead.company,
                lead.score,
                float(points),
                tuple(evidence[lead_id][:4]),
            )
        )
        if len(chosen) == size:
            break
    return chosen


def top_table(
    session: Session, routing: RoutingModel, now: datetime, size: int, rep: str | None = None
) -> Table:
    """Today's top leads of every rep (or one), as the digest lists them: a report and an
    API answer, for a CRM widget."""
    reps = [r for r in routing.reps if rep is None or r.email.casefold() == rep.casefold()]
    if rep is not None and not reps:
        raise LookupError(f"no rep {rep} in the routing file")
    rows = [
        (r.email, rank, lead.public_id, lead.name, lead.email, lead.company, lead.score,
         round(lead.gained, 1), " | ".join(lead.evidence))
        for r in reps
        for rank, lead in enumerate(top_leads(session, routing, r, now, size), start=1)
    ]  # fmt: skip
    columns = ("rep", "rank", "lead", "name", "email", "company", "score", "points this week",
               "evidence")  # fmt: skip
    notes = (
        f"as of {now:%Y-%m-%d %H:%M} UTC: each rep's {size} most active leads of the last 7"
        " days (points gained), among those nurture would route to them and sales does not"
        " have yet (subscriber, lead, mql, recycled); the list the morning digest sends",
    )
    return table("Top leads per rep", columns, rows, notes)


def compose(rep: SalesRep, leads: list[TopLead]) -> tuple[str, str, str]:
    """Subject, plain text and HTML of one rep's digest."""
    subject = f"Today's {len(leads)} most active leads"
    lines = [f"Hello {rep.name},", "", "The leads who did the most this week, not yet in the CRM:"]
    blocks = []
    for number, lead in enumerate(leads, 1):
        company = f", {lead.company}" if lead.company else ""
        lines += ["", f"{number}. {lead.name}{company} <{lead.email}> (score {lead.score})"]
        lines += [f"   - {item}" for item in lead.evidence]
        items = "".join(f"<li>{html.escape(item)}</li>" for item in lead.evidence)
        blocks.append(
            f"<li><strong>{html.escape(lead.name)}</strong>{html.escape(company)} "
            f"&lt;{html.escape(lead.email)}&gt; (score {lead.score})<ul>{items}</ul></li>"
        )
    text = "\n".join(lines) + "\n"
    body = (
        f"<html><body><p>Hello {html.escape(rep.name)},</p>"
        "<p>The leads who did the most this week, not yet in the CRM:</p>"
        f"<ol>{''.join(blocks)}</ol></body></html>"
    )
    return subject, text, body


def send_digests(runtime: Runtime, now: datetime) -> int:
    """Send each rep whose morning has come the digest they haven't had today."""
    routing = runtime.content.routing
    settings = runtime.settings
    if routing is None:
        return 0
    sent = 0
    for rep in routing.reps:
        local = now.astimezone(ZoneInfo(rep.timezone))
        if local.weekday() >= 5 or local.hour < settings.digest_hour:
            continue
        day = local.date().isoformat()
        with runtime.sessions.begin() as session:
            if session.scalar(
                select(Digest.id).where(Digest.rep_email == rep.email, Digest.day == day)
            ):
                continue
            leads = top_leads(session, routing, rep, now, settings.digest_size)
            row = Digest(
                rep_email=rep.email,
                day=day,
                leads=[lead.public_id for lead in leads],  # not addresses: see docs/privacy.md
                sent_at=now,
            )
            try:
                with session.begin_nested():
                    session.add(row)  # the unique (rep, day) key: once, across workers
            except IntegrityError:
                continue
        if not leads:
            continue
        subject, text, body = compose(rep, leads)
        email = notice(settings, f"digest/{rep.email}/{day}", rep.email, rep.name, subject,
                       text, body, "Daily top leads", now)  # fmt: skip
        result = runtime.dispatcher.send_now(email)
        if isinstance(result, Sent):
            sent += 1
        else:
            # Not delivered: forget today's row so the next tick tries again.
            with runtime.sessions.begin() as session:
                session.execute(
                    delete(Digest).where(Digest.rep_email == rep.email, Digest.day == day)
                )
    return sent
