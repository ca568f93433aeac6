"""API keys: shown once at creation, stored as a hash, looked up by prefix, each with
the scopes it may use.

| scope | allows |
|---|---|
| `intake` | `POST /leads`, `POST /leads/batch` |
| `events` | `POST /leads/{email}/events` |
| `read` | `GET /leads/{email}` |
| `sales` | `POST /promotions/{id}/feedback` (the CRM's answers) |
| `admin` | everything |
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from nurture.models import ApiKey

PREFIX = "nk_"
SCOPES = ("intake", "events", "read", "sales", "admin")
# What a website or an integration feeding leads needs; the CRM gets `sales` of its own.
DEFAULT_SCOPES = ("intake", "events", "read")


NAME_LENGTH = 100  # the column's


class KeyRefused(ValueError):
    """A key cannot be made as asked; `field` names what to change, the message why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


def allows(key: ApiKey, scope: str) -> bool:
    granted = set(key.scopes.split(","))
    return scope in granted or "admin" in granted


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    session: Session, name: str, now: datetime, scopes: tuple[str, ...] = DEFAULT_SCOPES
) -> str:
    """A new key `nk_<prefix>.<secret>`; only its hash is kept. KeyRefused, naming the
    field, for a blank or too long name or scopes outside SCOPES (nothing is written)."""
    if not name.strip():
        raise KeyRefused("name", "give the key a name saying who uses it (a website, the CRM)")
    if len(name) > NAME_LENGTH:
        raise KeyRefused("name", f"at most {NAME_LENGTH} characters (got {len(name)})")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise KeyRefused("scopes", f"expected some of {', '.join(SCOPES)}; got {unknown or 'none'}")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    granted = ",".join(s for s in SCOPES if s in scopes)
    session.add(
        ApiKey(name=name, prefix=prefix, secret_hash=_hash(secret), created_at=now, scopes=granted)
    )
    session.flush()
    return f"{PREFIX}{prefix}.{secret}"


def check_key(session: Session, presented: str) -> ApiKey | None:
    if not presented.startswith(PREFIX) or "." not in presented:
        return None
    prefix, _, secret = presented.removeprefix(PREFIX).partition(".")
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or key.revoked_at is not None:
        return None
    return key if hmac.compare_digest(key.secret_hash, _hash(secret)) else None


def revoke_key(session: Session, prefix: str, now: datetime) -> bool:
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix.removeprefix(PREFIX)))
    if key is None or key.revoked_at is not None:
        return False
    key.revoked_at = now
    return True


USE_PRECISION = timedelta(minutes=1)


def mark_used(session: Session, key_id: int, now: datetime) -> None:
    """Note that the key was used at `now`, at most once a minute: a busy key costs the
    API one write a minute, not one per request."""
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - USE_PRECISION),
        )
        .values(last_used_at=now)
    )
