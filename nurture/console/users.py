"""Console users in the database: create, list, disable, set a password, sign in; and
the leads a user may see. No Flask here: the CLI and the pages share it.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's recommended
second choice); a hash made with older parameters is remade at the next sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, false, func, select
from sqlalchemy.orm import Session

from nurture.core.access import ROLES, Account, password_problem
from nurture.models import Lead, User

HASHER = PasswordHasher()
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
Q = TypeVar("Q", bound=Select[Any])


class UserError(ValueError):
    """A user command or form cannot be carried out; the message says why."""


def normal_email(text: str) -> str:
    """The address as users are keyed: trimmed, lower-cased."""
    email = text.strip().lower()
    if not EMAIL.fullmatch(email) or len(email) > 320:
        raise UserError(f"{text!r} is not an email address")
    return email


def check_password(password: str, email: str) -> None:
    problem = password_problem(password, email)
    if problem:
        raise UserError(f"password refused: {problem}")


def find(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def _get(session: Session, email: str) -> User:
    user = find(session, email)
    if user is None:
        raise UserError(f"no console user {email.strip().lower()}")
    return user


def check_new_user(
    session: Session, email: str, role: str, rep_email: str | None = None
) -> tuple[str, str | None]:
    """The address and rep address a new user would get, or a UserError saying why
    there can be no such user (asked before the password is)."""
    email = normal_email(email)
    if role not in ROLES:
        raise UserError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if rep_email is not None and role != "sales":
        raise UserError("a rep address is for sales users only: the rep whose leads they see")
    if find(session, email) is not None:
        raise UserError(f"a console user {email} exists already")
    return email, normal_email(rep_email or email) if role == "sales" else None


def create_user(
    session: Session,
    email: str,
    role: str,
    password: str,
    now: datetime,
    rep_email: str | None = None,
) -> User:
    """A new user; a sales user is the rep `rep_email` (by default their own address)."""
    email, rep_email = check_new_user(session, email, role, rep_email)
    check_password(password, email)
    user = User(
        email=email,
        role=role,
        rep_email=rep_email,
        password_hash=HASHER.hash(password),
        created_at=now,
        password_changed_at=now,
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, email: str, password: str, now: datetime) -> User:
    """A new password; every session signed in with the old one ends (see `mark`)."""
    user = _get(session, email)
    check_password(password, user.email)
    user.password_hash = HASHER.hash(password)
    user.password_changed_at = now
    return user


def set_disabled(session: Session, email: str, now: datetime | None) -> User:
    """Disable the user at `now` (their sessions end at their next request), or
    enable them again with None."""
    user = _get(session, email)
    user.disabled_at = now
    return user


def listed(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def authenticate(session: Session, email: str, password: str, now: datetime) -> User | None:
    """The enabled user with this address and password, or None whatever the reason
    (no such user, wrong password, disabled): a caller cannot tell which, and neither
    can the time it takes, as an unknown address is checked against a hash too."""
    user = find(session, email)
    try:
        HASHER.verify(user.password_hash if user else _decoy(), password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at is not None:
        return None
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = HASHER.hash(password)  # same password: sessions go on
    user.signed_in_at = now
    return user


_DECOYS: dict[str, str] = {}


def _decoy() -> str:
    """A hash of a random password with the current parameters, made once."""
    # Keyed by the parameters: tests swap the hasher for a cheaper one.
    parameters = f"{HASHER.time_cost}:{HASHER.memory_cost}:{HASHER.parallelism}"
    if parameters not in _DECOYS:
        _DECOYS[parameters] = HASHER.hash(secrets.token_urlsafe(16))
    return _DECOYS[parameters]


def mark(user: User, key: str) -> str:
    """What a session remembers of the password it was opened with: a keyed digest of
    its hash, so a new password (or a stolen cookie after one) ends older sessions.
    Remade on a rehash at sign-in, which ends only the user's other sessions."""
    digest = hmac.new(key.encode(), user.password_hash.encode(), hashlib.sha256)
    return digest.hexdigest()[:24]


def account(user: User) -> Account:
    return Account(id=user.id, email=user.email, role=user.role, rep_email=user.rep_email)


def visible_leads(query: Q, user: Account) -> Q:
    """`query` (which selects from, or joins, `leads`) narrowed to the leads `user` may
    see: a sales user's own leads (their rep address), everyone's for other roles.
    Every console query that shows or counts leads goes through here."""
    if user.sees_every_lead:
        return query
    if not user.rep_email:
        return query.where(false())
    return query.where(func.lower(Lead.rep_email) == user.rep_email.strip().lower())
