"""Emails nurture sends to its own people (a rep's daily digest, the owner's alarms):
from the configured sender, with a Message-ID made from a key (so a retry is the same
message), and no list to leave."""

from __future__ import annotations

from datetime import datetime

from nurture.config import Settings
from nurture.core.message import Envelope, OutgoingEmail, build, make_message_id


def notice(
    settings: Settings,
    key: str,
    to_email: str,
    to_name: str | None,
    subject: str,
    text: str,
    html: str,
    list_name: str,
    now: datetime,
) -> Envelope:
    """The message, ready for `Dispatcher.send_now`; `key` names it for good."""
    return build(
        OutgoingEmail(
            message_id=make_message_id(key, settings.message_id_domain),
            from_name=settings.sender_name,
            from_email=settings.sender_email,
            to_name=to_name,
            to_email=to_email,
            reply_to=None,
            subject=subject,
            html=html,
            text=text,
            list_id=f"{key.split('/', 1)[0]}.{settings.list_id_domain}",
            list_name=list_name,
            # An internal email: no list to leave, so no List-Unsubscribe (a link that
            # unsubscribes nobody, beside a one-click header, would mislead the reader's
            # mail client).
            unsubscribe_url=None,
            unsubscribe_mailto=None,
            date=now,
        )
    )
