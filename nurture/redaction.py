"""Secrets kept out of everything nurture prints or logs, and email addresses out of its
logs: one place that masks them.

- `text`: a message with its secrets masked: every URL's password (and any `password=`
  parameter), API keys and webhook secrets by their form, `Bearer …` credentials, and
  every value `conceal`ed so far (the settings' secrets, once a process has loaded them).
- `url`: the same for one URL.
- `setting`: how a setting's raw value may be shown: never for a secret, a URL
  without its password otherwise.
- `log_line`: what a log may carry: `text`, and every email address replaced by
  `<email>` (a lead is named in logs by its opaque id, never by its address).
- `install_logging`: every log record of the process goes through `log_line`: its
  message with its arguments, its exception text and its stack, whichever logger wrote
  it (nurture's, werkzeug's and gunicorn's access lines, a library's) and whichever
  handler prints it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import fields
from typing import Any
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
EMAIL_MASK = "<email>"
# Settings whose whole value is a secret: shown as the mask, never in part.
SECRET_SETTINGS = frozenset(
    {"secret_key", "crm_webhook_secret", "metrics_token", "suppression_secret"}
)
# Shorter values are not concealed by value: a weak password such as "postgres" would
# mask parts of ordinary words. A URL's password of any length is still masked by its
# place in the URL; secret settings are longer (16 characters at least).
CONCEALED_LENGTH = 10

# scheme://user:password@host (a password may hold a "/" its writer did not encode), and
# password=… in a query string or a libpq keyword list.
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@?#]*(?=@)")
_PASSWORD_PARAMETER = re.compile(r"(?P<head>\bpassword=)[^\s&;]*", re.IGNORECASE)
# Secrets known by their form: an API key's secret part (nurture.apikeys: nk_<prefix>.<secret>,
# the prefix names the key and stays), a webhook signing secret (whsec_<base64>), and
# the credentials of an Authorization header.
_API_KEY = re.compile(r"(?P<head>\bnk_[0-9a-f]+\.)[A-Za-z0-9_-]+")
_WEBHOOK_SECRET = re.compile(r"(?P<head>\bwhsec_)[A-Za-z0-9+/=]+")
_CREDENTIALS = re.compile(r"(?P<head>\b(?:Bearer|[Aa]uthorization:\s*Basic)\s+)[^\s\"',;]+")
# An email address, also as a URL carries it (%40 for @); the domain needs a dot.
# A match starts only where a word starts: a long token costs one pass, not one per character.
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")

_concealed: frozenset[str] = frozenset()
_concealed_pattern: re.Pattern[str] | None = None
_concealing = threading.Lock()


def _masked(pattern: re.Pattern[str], message: str) -> str:
    return pattern.sub(lambda m: f"{m.group('head')}{MASK}", message)


def text(message: str) -> str:
    """`message` with every secret in it masked."""
    pattern = _concealed_pattern
    if pattern is not None:
        message = pattern.sub(MASK, message)
    for form in (_USERINFO, _PASSWORD_PARAMETER, _API_KEY, _WEBHOOK_SECRET, _CREDENTIALS):
        message = _masked(form, message)
    return message


def url(value: str) -> str:
    """A URL fit for a message or a log: its password masked."""
    return text(value)


def setting(name: str, raw: str) -> str:
    """A setting's raw value as an error message may quote it."""
    if name in SECRET_SETTINGS:
        return repr(MASK)
    return repr(text(raw))


def log_line(message: str) -> str:
    """`message` as a log may carry it: secrets masked, and email addresses."""
    return _EMAIL.sub(EMAIL_MASK, text(message))


# --- secrets known by their value ----------------------------------------------------


def conceal(values: Iterable[str | None]) -> None:
    """Mask these exact values wherever `text` meets them from now on, in the forms a
    URL may carry them too (percent-encoded)."""
    forms: set[str] = set()
    for value in values:
        if value is None or len(value) < CONCEALED_LENGTH:
            continue
        forms.update((value, quote(value), quote(value, safe=""), quote_plus(value)))
    global _concealed, _concealed_pattern
    with _concealing:
        if forms <= _concealed:
            return
        _concealed = _concealed | forms
        ordered = sorted(_concealed, key=len, reverse=True)  # the longest form first
        _concealed_pattern = re.compile("|".join(map(re.escape, ordered)))


def conceal_settings(settings: Any) -> None:
    """Conceal a process's secrets: the secret settings, and the password of every
    setting that is a URL (as written, and decoded)."""
    values: list[str | None] = []
    for name in (f.name for f in fields(settings)):
        value = getattr(settings, name)
        if name in SECRET_SETTINGS:
            values.append(value)
        elif isinstance(value, str) and (found := _USERINFO.search(value)):
            password = value[found.end("head") : found.end()]
            values += [password, unquote(password)]
    conceal(values)


# --- logs ----------------------------------------------------------------------------


class _MaskingRecords:
    """A log record factory: the records the previous factory makes, masked at birth.

    Masking the record itself, rather than what one handler prints, covers every
    handler (the CLI's, gunicorn's, a test's capture, Python's last resort) and
    every logger, with nothing to configure on each."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: its parts, rather than a logging error
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = log_line(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = log_line(record.exc_text)
        if record.stack_info:
            record.stack_info = log_line(record.stack_info)
        return record


def install_logging() -> None:
    """Mask every log record of this process from now on (once is enough; again is
    harmless)."""
    with _concealing:
        current = logging.getLogRecordFactory()
        if not isinstance(current, _MaskingRecords):
            logging.setLogRecordFactory(_MaskingRecords(current))
