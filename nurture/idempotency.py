"""Idempotency keys: a request's key is reserved before its work starts, so a second
request with the same key never does the work again, even while the first still runs.

- The first request inserts the key's row (`status` 0: in progress) in a transaction
  of its own, then works, then stores its answer in the row. An answer of 5xx, or an
  error, frees the key: a failure may be retried for real.
- A request that finds the row gets the stored answer (same body) or a 409 (another
  body); while the first is still at work, a 409 `idempotency_in_progress` with
  `Retry-After`. Neither changes anything.
- A reservation left in progress for `ABANDONED` (its process died) may be taken over.
- Rows expire after `TTL`: the answers hold leads' data (`expire`, from the worker's
  retention job; an erasure removes the person's at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, cast, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from nurture.models import IdempotencyKey

TTL = timedelta(hours=24)
ABANDONED = timedelta(minutes=5)
IN_PROGRESS = 0


@dataclass(frozen=True)
class Reserved:
    """This request holds the key: do the work, then `finish` or `release`."""

    row_id: int


@dataclass(frozen=True)
class Found:
    """Another request holds or held the key."""

    request_hash: str
    status: int  # IN_PROGRESS while it works
    body: dict[str, Any]

    @property
    def in_progress(self) -> bool:
        return self.status == IN_PROGRESS


def reserve(
    sessions: sessionmaker[Session], api_key_id: int, key: str, digest: str, now: datetime
) -> Reserved | Found:
    for _ in range(3):
        try:
            with sessions.begin() as session:
                row = session.scalar(
                    select(IdempotencyKey)
                    .where(IdempotencyKey.api_key_id == api_key_id, IdempotencyKey.key == key)
                    .with_for_update()
                )
                if row is not None and _still_holds(row, now):
                    return Found(row.request_hash, row.status, dict(row.body))
                if row is not None:
                    session.delete(row)  # expired, or abandoned by a process that died
                    session.flush()
                fresh = IdempotencyKey(
                    api_key_id=api_key_id,
                    key=key,
                    request_hash=digest,
                    status=IN_PROGRESS,
                    body={},
                    created_at=now,
                )
                session.add(fresh)
                session.flush()
                return Reserved(fresh.id)
        except IntegrityError:
            continue  # another request reserved it meanwhile: read what it holds
    raise RuntimeError(f"could not reserve idempotency key {key!r}")


def _still_holds(row: IdempotencyKey, now: datetime) -> bool:
    if row.status == IN_PROGRESS:
        return now - row.created_at < ABANDONED
    return now - row.created_at < TTL


def finish(
    sessions: sessionmaker[Session], reserved: Reserved, status: int, body: dict[str, Any]
) -> None:
    with sessions.begin() as session:
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == reserved.row_id)
            .values(status=status, body=body)
        )


def release(sessions: sessionmaker[Session], reserved: Reserved) -> None:
    with sessions.begin() as session:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == reserved.row_id))


def expire(session: Session, now: datetime) -> int:
    """Remove the answers older than `TTL`; how many."""
    result = session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.created_at < now - TTL)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def forget(session: Session, email: str) -> None:
    """Remove the stored answers that mention `email` (an erasure)."""
    session.execute(
        delete(IdempotencyKey)
        .where(cast(IdempotencyKey.body, Text).contains(email, autoescape=True))
        .execution_options(synchronize_session=False)
    )
