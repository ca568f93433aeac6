"""Double opt-in, the pure part: which forms need it, what a confirmed submission
records, when a failed confirmation email is tried again, and the email itself.

The confirmation email is not a sequence email: the person is on no list yet, so it
has no shared layout, no unsubscribe footer and no `List-Unsubscribe` header. Its own
footer says why it came and that ignoring it is enough. Its template is three small
Jinja files per locale (see docs/intake.md), rendered in Jinja's sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from nurture.core.message import clean_text, parse_address
from nurture.core.rendering import Sender

ALL_FORMS = "*"
PROOF = "double opt-in confirmed"
"""Written into the consent's source and the event: how this consent was obtained."""

# The wait after each failed attempt: a relay that is down for a few hours still
# delivers the email well within the days the link is valid.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1


def needs_confirmation(form: str, forms: frozenset[str]) -> bool:
    """Whether submissions of `form` wait for the emailed link (`*` names every form)."""
    return ALL_FORMS in forms or form in forms


def retry_delay(attempts: int) -> timedelta | None:
    """The wait after the `attempts`-th failed attempt; None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return RETRY_DELAYS[max(attempts, 1) - 1]


def confirmed_lead(body: Mapping[str, Any], form: str) -> dict[str, Any]:
    """The lead body as submitted, its consent now proven by the confirmation.

    A form without a consent box is consented to by the confirmation itself (the
    person clicked "confirm"); a box left unticked stays a refusal: the link proves
    the address, not a consent the person declined.
    """
    consent = dict(body.get("consent") or {"purpose": "marketing", "granted": True})
    consent["source"] = f"{PROOF}, form {form}"[:100]
    return {**body, "consent": consent}


def confirmed_properties(properties: Mapping[str, Any], submitted_at: datetime) -> dict[str, Any]:
    """The `form_submitted` properties, saying the address was confirmed and when it
    was submitted (the event itself is recorded at the confirmation)."""
    return {**properties, "double_opt_in": "confirmed", "submitted_at": submitted_at.isoformat()}


@dataclass(frozen=True)
class ConfirmationTemplate:
    """One locale of the confirmation email, as the texts of its three files."""

    locale: str
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class ConfirmationEmail:
    """Everything one confirmation email is made of."""

    message_id: str  # without angle brackets; retries keep it
    to_email: str
    first_name: str | None
    form: str
    confirm_url: str
    days: int  # how long the link works
    sender: Sender
    reply_to: str | None
    date: datetime


class TemplateError(ValueError):
    """The confirmation template does not render; the message says which file and why."""


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=autoescape, trim_blocks=True, lstrip_blocks=True
    )


_TEXT = _environment(autoescape=False)
_HTML = _environment(autoescape=True)


def _render(
    environment: ImmutableSandboxedEnvironment, source: str, where: str, **values: Any
) -> str:
    try:
        return environment.from_string(source).render(**values)
    except Exception as error:  # a template is authored code: say where it broke
        raise TemplateError(f"{where}: {error}") from error


def compose(template: ConfirmationTemplate, email: ConfirmationEmail) -> EmailMessage:
    """The MIME message (plain text, then HTML); raises TemplateError or MessageError."""
    if email.date.tzinfo is None:
        raise ValueError(f"naive datetime refused: {email.date!r}")
    values = {
        "confirm_url": email.confirm_url,
        "form": email.form,
        "email": email.to_email,
        "first_name": email.first_name or "",
        "days": email.days,
        "sender": email.sender,
        "locale": template.locale,
    }
    where = f"form_confirmation ({template.locale})"
    subject = clean_text(_render(_TEXT, template.subject, f"{where} subject.txt", **values))
    if not subject:
        raise TemplateError(f"{where} subject.txt: the subject renders empty")
    text = _render(_TEXT, template.text, f"{where} body.txt", **values)
    html = _render(_HTML, template.html, f"{where} body.html", **values)
    message = EmailMessage(policy=default)
    message["Message-ID"] = f"<{email.message_id}>"
    message["Date"] = format_datetime(email.date)
    message["From"] = parse_address("sender_email", email.sender.email, email.sender.name)
    message["To"] = parse_address("to_email", email.to_email, email.first_name)
    if email.reply_to:
        message["Reply-To"] = parse_address("reply_to", email.reply_to)
    message["Subject"] = subject
    # RFC 3834: sent by a machine on someone's request; auto-responders stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text.strip() + "\n")
    message.add_alternative(html, subtype="html")
    return message
