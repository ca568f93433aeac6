"""Fenced claims: who holds a delivery, until when, and writes only its holder may make.

A worker claims a delivery with its own token (`holder`) and a lease computed from the
time of that claim. While it works, a heartbeat thread renews the leases of everything
it holds, so a lease runs out only when its holder is really gone (killed, frozen, cut
off from the database). Every write after the claim (hand-over, record) first locks the
rows still held by this holder; a row whose lease was lost is left alone, and an email
whose lease was lost is never handed to SMTP.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from nurture.db import among
from nurture.models import Delivery

log = logging.getLogger(__name__)

HELD = ("claimed", "sending")


def new_holder() -> str:
    """A token naming this process, readable by an operator: host/pid/random."""
    return f"{socket.gethostname()[:48]}/{os.getpid()}/{secrets.token_hex(4)}"


def still_held(
    session: Session,
    holder: str,
    ids: Iterable[int],
    states: tuple[str, ...],
    now: datetime | None = None,
) -> set[int]:
    """The deliveries among `ids` this holder still holds in one of `states` (and, with
    `now`, whose lease has not run out), locked until the transaction ends."""
    ids = list(ids)
    if not ids:
        return set()
    query = select(Delivery.id).where(
        among(session, Delivery.id, ids),
        Delivery.claimed_by == holder,
        Delivery.status.in_(states),
    )
    if now is not None:
        query = query.where(Delivery.lease_until > now)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return set(session.scalars(query))


def renew(session: Session, holder: str, until: datetime) -> int:
    """Push the leases of everything this holder holds to `until`; how many."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.claimed_by == holder, Delivery.status.in_(HELD))
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


class Heartbeat:
    """Renews this holder's leases every quarter lease while a tick works.

    Runs on its own thread and connection, so a long SMTP exchange or a slow render
    never lets a lease lapse. A failed renewal is logged and tried again; if the
    database stays unreachable past the lease, the claims are lost, and the fenced
    writes make sure nothing is sent on a lost claim.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        holder: str,
        lease: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.sessions = sessions
        self.holder = holder
        self.lease = lease
        self.clock = clock
        self.interval = min(max(lease.total_seconds() / 4, 0.5), 60.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0

    def beat(self) -> None:
        with self.sessions.begin() as session:
            renew(session, self.holder, self.clock() + self.lease)
        self.renewals += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as error:  # the database blinked: try again next beat
                log.warning("lease renewal failed: %s", error)

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="nurture-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
