"""Whether a lead may be mailed now (unsubscribed, bounced, disqualified, consent),
and the suppression list: the addresses never to mail again, kept as keyed hashes.

A lead's state is read at the claim and again just before each chunk is handed to
SMTP, with the latest marketing consent decision read alongside it in one statement.

The list keeps HMAC-SHA256 of each address under a key of its own, derived from the
secret key (or `NURTURE_SUPPRESSION_SECRET`): a stolen database alone cannot be
reversed by hashing candidate addresses. The key's fingerprint is kept beside the
list, so a changed secret stops everything with a clear error instead of quietly
letting everyone back in. Entries written before the list was keyed (plain SHA-256)
are still honoured, and re-keyed when their address is seen again.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.config import Settings, resolve_secret_key
from nurture.db import among
from nurture.models import Consent, KeyFingerprint, Lead, Suppression


class Suppressible(Protocol):
    unsubscribed_at: datetime | None
    bounced_at: datetime | None
    stage: str
    category: str | None
    consent: bool | None  # the latest marketing decision, if any


# The latest marketing consent decision, read with the lead (one index probe each).
LATEST_CONSENT = (
    select(Consent.granted)
    .where(Consent.lead_id == Lead.id, Consent.purpose == "marketing")
    .order_by(Consent.at.desc(), Consent.id.desc())
    .limit(1)
    .scalar_subquery()
    .label("consent")
)

# What `_suppression` reads, when the rest of the lead is not needed.
SUPPRESSION_COLUMNS = (
    Lead.id,
    Lead.unsubscribed_at,
    Lead.bounced_at,
    Lead.stage,
    Lead.category,
    LATEST_CONSENT,
)


def suppression_reason(lead: Suppressible, consent_required: bool) -> str | None:
    """Why this lead must not be mailed now, or None."""
    consent = lead.consent
    if lead.unsubscribed_at is not None:
        return "unsubscribed"
    if lead.bounced_at is not None:
        return "bounced"
    if lead.stage == "disqualified" or lead.category == "no_interest":
        return "disqualified"
    if consent is False:
        return "consent withdrawn"
    if consent_required and consent is not True:
        return "no consent"
    return None


# --- the suppression list ---------------------------------------------------------------

FINGERPRINT = "suppression"


class KeyChanged(Exception):
    """The suppression list was written with another key: NURTURE_SECRET_KEY changed?
    Set NURTURE_SUPPRESSION_SECRET to the previous secret key, or nobody who
    unsubscribed or was erased would stay suppressed."""


@dataclass(frozen=True)
class ListKey:
    """The key of the suppression list (and of the privacy log's hashes)."""

    key: bytes

    def digest(self, email: str) -> str:
        return hmac.new(self.key, _normal(email), hashlib.sha256).hexdigest()

    @property
    def fingerprint(self) -> str:
        return hmac.new(self.key, b"nurture.fingerprint", hashlib.sha256).hexdigest()


def legacy_digest(email: str) -> str:
    """What the list kept before it was keyed."""
    return hashlib.sha256(_normal(email)).hexdigest()


def _normal(email: str) -> bytes:
    return email.strip().lower().encode("utf-8")


def list_key(settings: Settings) -> ListKey:
    secret = settings.suppression_secret or resolve_secret_key(settings)
    return _derived(secret)


@lru_cache(maxsize=8)
def _derived(secret: str) -> ListKey:
    return ListKey(hmac.new(secret.encode(), b"nurture.suppression", hashlib.sha256).digest())


_checked: set[tuple[str, str]] = set()  # (database, fingerprint) pairs found to agree


def check_key(session: Session, key: ListKey, now: datetime) -> None:
    """Raise KeyChanged when the list holds entries written with another key; the first
    keyed use records the key's fingerprint. Checked once per process and database."""
    database = str(session.get_bind().engine.url)
    if (database, key.fingerprint) in _checked:
        return
    kept = session.get(KeyFingerprint, FINGERPRINT)
    if kept is None:  # remembered once committed, so not memoised yet
        try:
            with session.begin_nested():
                session.add(KeyFingerprint(name=FINGERPRINT, fingerprint=key.fingerprint, at=now))
        except IntegrityError:  # another process recorded one just now: compare with it
            check_key(session, key, now)
        return
    if not hmac.compare_digest(kept.fingerprint, key.fingerprint):
        raise KeyChanged(KeyChanged.__doc__)
    _checked.add((database, key.fingerprint))


def suppressed_among(
    session: Session, key: ListKey, emails: Iterable[str], now: datetime
) -> set[str]:
    """Which of these addresses are on the list (one query for them all)."""
    check_key(session, key, now)
    keyed = {key.digest(email): email for email in emails}
    legacy = {legacy_digest(email): email for email in keyed.values()}
    found = set(
        session.scalars(
            select(Suppression.email_hash).where(
                among(session, Suppression.email_hash, [*keyed, *legacy])
            )
        )
    )
    stale = [legacy[digest] for digest in found if digest in legacy]
    for email in stale:  # seen again: re-keyed, so the plain hash goes
        suppress(session, key, email, "re-keyed", now)
    return {keyed[digest] for digest in found if digest in keyed} | set(stale)


def suppressed(session: Session, key: ListKey, email: str, now: datetime) -> bool:
    return bool(suppressed_among(session, key, [email], now))


def suppress(session: Session, key: ListKey, email: str, reason: str, now: datetime) -> None:
    """Never mail this address again (idempotent); only its keyed hash is kept."""
    check_key(session, key, now)
    digest = key.digest(email)
    old = session.get(Suppression, legacy_digest(email))
    if session.get(Suppression, digest) is None:
        kept_reason = old.reason if old is not None and reason == "re-keyed" else reason
        session.add(Suppression(email_hash=digest, reason=kept_reason[:100], at=now))
    if old is not None:
        session.execute(delete(Suppression).where(Suppression.email_hash == old.email_hash))
        session.expunge(old)
