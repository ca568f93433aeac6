"""API keys: shown once at creation, stored as a hash, looked up by prefix."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.models import ApiKey

PREFIX = "nk_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, name: str, now: datetime) -> str:
    """A new key `nk_<prefix>.<secret>`; only its hash is kept."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(ApiKey(name=name, prefix=prefix, secret_hash=_hash(secret), created_at=now))
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
