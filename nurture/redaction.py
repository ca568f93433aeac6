"""Secrets kept out of everything nurture prints or logs: one place that masks them.

- `url`: a URL with its password (and any `password=` parameter) replaced by `***`.
- `text`: the same for every URL inside a free text (an exception's message).
- `setting`: how a setting's raw value may be shown: never for a secret, a URL
  without its password otherwise.
"""

from __future__ import annotations

import re

MASK = "***"
# Settings whose whole value is a secret: shown as the mask, never in part.
SECRET_SETTINGS = frozenset({"secret_key", "crm_webhook_secret", "metrics_token"})
# scheme://user:password@host, and password=… in a query string or a libpq keyword list.
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]*@")
_PASSWORD_PARAMETER = re.compile(r"(?P<head>\bpassword=)[^\s&;]*", re.IGNORECASE)


def text(message: str) -> str:
    """`message` with the password of every URL in it masked."""
    masked = _USERINFO.sub(lambda m: f"{m.group('head')}{MASK}@", message)
    return _PASSWORD_PARAMETER.sub(lambda m: f"{m.group('head')}{MASK}", masked)


def url(value: str) -> str:
    """A URL fit for a message or a log: its password masked."""
    return text(value)


def setting(name: str, raw: str) -> str:
    """A setting's raw value as an error message may quote it."""
    if name in SECRET_SETTINGS:
        return repr(MASK)
    return repr(text(raw))
