"""The naive pipeline the engine is compared with: one due enrollment at a time, start to end.

For each due enrollment, in its own transaction: load the lead, render the raw
(not pre-inlined) layout and body with Jinja, run premailer on the HTML, build an
`EmailMessage` with the standard library, send it with smtplib over one kept-open
connection, record the delivery, commit. It uses the engine's models, templates,
premailer options, unsubscribe tokens and the same sink; it does not use the engine's
renderer, message builder or mailer, so engine changes there do not move this baseline.
"""

from __future__ import annotations

import logging
import re
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import premailer
from jinja2 import Environment, Template
from sqlalchemy import select

from nurture.config import Settings
from nurture.core.message import make_message_id
from nurture.core.rendering import Sender
from nurture.db import make_engine, make_sessionmaker
from nurture.leads import profile_of
from nurture.models import Delivery, Enrollment, Lead
from nurture.tracking import Tokens, unsubscribe_url

_CONTENT = re.compile(r"\{\{\s*content\s*\}\}")
# The options the engine gives premailer, so both inline the same way.
_PREMAILER = {
    "keep_style_tags": True,
    "remove_classes": False,
    "disable_validation": True,
    "strip_important": False,
    "cssutils_logging_level": logging.CRITICAL,
    "allow_network": False,
    "disable_link_rewrites": True,
}


@dataclass(frozen=True)
class NaiveRun:
    sent: int
    seconds: float
    message_ids: frozenset[str]  # with angle brackets, as the sink reports them


class _Templates:
    """Jinja templates compiled from the raw sources, cached like a loader would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        options: dict[str, Any] = {
            "trim_blocks": True,
            "lstrip_blocks": True,
            "finalize": lambda value: "" if value is None else value,
        }
        self.html_env = Environment(autoescape=True, **options)
        self.text_env = Environment(autoescape=False, **options)
        self.cache: dict[tuple[str, str], tuple[Template, Template, Template, str | None]] = {}

    def get(self, name: str, locale: str) -> tuple[Template, Template, Template, str | None]:
        key = (name, locale)
        if key not in self.cache:
            email, layout = self.root / "emails" / name, self.root / "layouts" / locale

            def joined(base: str, body: str) -> str:
                fragment = (email / locale / body).read_text(encoding="utf-8")
                source = (layout / base).read_text(encoding="utf-8")
                return _CONTENT.sub(lambda _: fragment, source, count=1)

            css_path = email / "style.css"
            css = css_path.read_text(encoding="utf-8") if css_path.exists() else None
            subject = (email / locale / "subject.txt").read_text(encoding="utf-8")
            self.cache[key] = (
                self.text_env.from_string(subject),
                self.html_env.from_string(joined("base.html", "body.html")),
                self.text_env.from_string(joined("base.txt", "body.txt")),
                css,
            )
        return self.cache[key]


def run_naive(
    database_url: str,
    settings: Settings,
    secret_key: str,
    smtp_url: str,
    now: datetime,
    limit: int | None,
    deadline: float,
    when_done: Callable[[], None] = lambda: None,
) -> NaiveRun:
    """Send up to `limit` due emails the naive way (stops at `deadline`, a monotonic time);
    `when_done` runs after the last one, before the database connections close."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    templates = _Templates(Path(settings.templates_dir))
    tokens = Tokens(secret_key)
    target = urlsplit(smtp_url)
    mailer = smtplib.SMTP(target.hostname, target.port or 25, timeout=30)
    sender = Sender(
        name=settings.sender_name,
        company=settings.sender_company,
        email=settings.sender_email,
        postal_address=settings.postal_address,
        website=settings.sender_website,
    )
    sent = 0
    ids: set[str] = set()
    start = time.perf_counter()
    try:
        with sessions() as session:
            query = (
                select(Enrollment.id)
                .where(Enrollment.status == "active", Enrollment.due_at <= now)
                .order_by(Enrollment.due_at, Enrollment.id)
            )
            if limit is not None:
                query = query.limit(limit)
            due = list(session.scalars(query))
        for enrollment_id in due:
            if time.monotonic() > deadline:
                break
            with sessions.begin() as session:
                enrollment = session.get(Enrollment, enrollment_id)
                assert enrollment is not None
                lead = session.get(Lead, enrollment.lead_id)
                assert lead is not None
                profile = profile_of(lead)
                locale = profile.locale if profile.locale in ("en", "fr") else "en"
                template = "eval-story-moulages-berthier"
                delivery = Delivery(
                    enrollment_id=enrollment.id,
                    lead_id=lead.id,
                    sequence_id=enrollment.sequence_id,
                    version=enrollment.version,
                    step_id=enrollment.step_id,
                    template=template,
                    kind="testimonial",
                    status="sending",
                    attempts=1,
                    message_id=make_message_id(
                        f"naive/{enrollment.id}/{enrollment.step_id}", settings.message_id_domain
                    ),
                    to_email=lead.email,
                    created_at=now,
                    updated_at=now,
                )
                session.add(delivery)
                session.flush()
                link = unsubscribe_url(settings.base_url, tokens.unsubscribe(delivery.id))
                variables = {
                    "lead": profile,
                    "rep": profile.rep,
                    "sender": sender,
                    "unsubscribe_url": link,
                    "sequence": enrollment.sequence_id,
                    "step": enrollment.step_id,
                    "locale": locale,
                }
                subject_t, html_t, text_t, css = templates.get(template, locale)
                options = dict(_PREMAILER, css_text=css) if css else _PREMAILER
                html = premailer.transform(html_t.render(variables), **options)
                subject = " ".join(subject_t.render(variables).split())
                name = " ".join(p for p in (profile.first_name, profile.last_name) if p)
                message = EmailMessage(policy=SMTP)
                message["Message-ID"] = f"<{delivery.message_id}>"
                message["Date"] = format_datetime(now)
                message["From"] = Address(settings.sender_name, addr_spec=settings.sender_email)
                message["To"] = Address(name, addr_spec=profile.email)
                message["Subject"] = subject
                message["List-Id"] = f"<{enrollment.sequence_id}.{settings.list_id_domain}>"
                message["List-Unsubscribe"] = f"<{link}>"
                message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
                message.set_content(
                    text_t.render(variables), charset="utf-8", cte="quoted-printable"
                )
                message.add_alternative(
                    html, subtype="html", charset="utf-8", cte="quoted-printable"
                )
                refused = mailer.send_message(message)
                if refused:
                    raise RuntimeError(f"naive pipeline: the sink refused {refused}")
                delivery.status = "sent"
                delivery.subject = subject[:500]
                delivery.sent_at = now
                enrollment.status = "completed"
                enrollment.due_at = None
                enrollment.left_at = now
                enrollment.exit_reason = "completed"
            sent += 1
            ids.add(f"<{delivery.message_id}>")
        seconds = time.perf_counter() - start
        when_done()
    finally:
        mailer.quit()
        engine.dispose()
    return NaiveRun(sent, seconds, frozenset(ids))
