"""Opaque identifiers: what a lead is called in URLs, API answers and logs.

A lead's row number tells how many leads a company has and invites walking the
sequence; its address is personal data that must not end up in access logs. So
each lead also gets a random `public_id` (`ld_` and 20 URL-safe characters, 120
bits), made once when the row is made and never changed.
"""

from __future__ import annotations

import re
import secrets

LEAD_PREFIX = "ld_"
LEAD_ID = re.compile(r"^ld_[A-Za-z0-9_-]{20}$")


def new_lead_id() -> str:
    return LEAD_PREFIX + secrets.token_urlsafe(15)


def is_lead_id(text: str) -> bool:
    return LEAD_ID.match(text) is not None
