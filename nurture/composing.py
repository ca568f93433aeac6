"""Composing one sequence email: the template rendered for the lead, its links
rewritten to tracked ones (the delivery enciphered in each), the MIME message built."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from nurture.config import Settings
from nurture.core.links import campaign_target, rewrite
from nurture.core.message import MessageError, OutgoingEmail, build
from nurture.core.rendering import EmailContext, RenderError, Sender
from nurture.tracking import click_url, open_url, unsubscribe_url

if TYPE_CHECKING:
    from nurture.claims import Job
    from nurture.dispatch import Dispatcher


def sender_of(settings: Settings) -> Sender:
    """Who the emails come from, as the templates' footer shows it."""
    return Sender(
        name=settings.sender_name,
        company=settings.sender_company,
        email=settings.sender_email,
        postal_address=settings.postal_address,
        website=settings.sender_website,
    )


def compose(dispatcher: Dispatcher, job: Job, now: datetime) -> None:
    """Render the job's email, track its links and build the message, or set
    `job.error`: what a delivery holds before it is handed to SMTP."""
    lead = job.facts.lead
    base = dispatcher.settings.base_url
    link = unsubscribe_url(base, dispatcher.tokens.unsubscribe(job.delivery_id))
    context = EmailContext(
        lead=lead,
        rep=lead.rep,
        sender=dispatcher.sender,
        unsubscribe_url=link,
        sequence=job.sequence.id,
        step=job.step.id,
        subject_override=job.step.subject,
    )
    try:
        # The template version pinned to the lead's sequence version, not the disk's.
        templates = dispatcher.content.pins.catalog(
            job.sequence.id, job.sequence.version, job.step.template
        )
        rendered = templates.render(job.step.template, lead.locale, context)
    except RenderError as error:
        job.error = f"render error: {error}"
        return
    tokens, delivery_id = dispatcher.tokens, job.delivery_id
    sequence_id, step_id = job.sequence.id, job.step.id
    tracked = rewrite(
        rendered.html,
        rendered.text,
        lambda index, url: click_url(
            base, tokens.link(delivery_id, index, campaign_target(url, sequence_id, step_id))
        ),
        open_url(base, dispatcher.tokens.open(job.delivery_id)),
        dispatcher.settings.sender_website,  # the honeypot's target: harmless if followed
        keep=lambda url: url.startswith(f"{base}/u/"),
    )
    job.links = list(tracked.links)
    job.honeypot = tracked.honeypot_index
    full_name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or None
    job.rendered = OutgoingEmail(
        message_id=job.message_id,
        from_name=dispatcher.settings.sender_name,
        from_email=dispatcher.settings.sender_email,
        to_name=full_name,
        to_email=lead.email,
        reply_to=(lead.rep.email if lead.rep else None) or dispatcher.settings.reply_to,
        subject=rendered.subject,
        html=tracked.html,
        text=tracked.text,
        list_id=f"{job.sequence.id}.{dispatcher.settings.list_id_domain}",
        list_name=job.sequence.name,
        unsubscribe_url=link,
        unsubscribe_mailto=dispatcher.settings.unsubscribe_mailto,
        date=now,
        # No header names the delivery: its number would tell a reader or a relay
        # how much is sent. The Message-ID (a digest) is what relay logs match.
    )
    try:
        job.message = build(job.rendered)
    except MessageError as error:  # e.g. an address SMTP could not carry
        job.rendered = None
        job.error = f"message error: {error}"
