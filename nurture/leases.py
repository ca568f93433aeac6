"""Fenced claims: who holds a delivery, until when, and writes only its holder may make.

A worker claims a delivery with its own token (`holder`) and a lease computed from the
time of that claim. While it works, a heartbeat thread renews the leases of everything
it holds, so a lease runs out only when its holder is really gone (killed, frozen, cut
off from the database). Every write after the claim is made only where this holder
still holds the row (`update_if_held`, a condition of the UPDATE itself on PostgreSQL):
a row whose lease was lost is left alone, and an email whose lease was lost is never
handed to SMTP.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import BindParameter, String, bindparam, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker

from nurture.db import update_held
from nurture.models import Delivery, UTCDateTime

log = logging.getLogger(__name__)

HELD = ("claimed", "sending")


def new_holder() -> str:
    """A token naming this process, readable by an operator: host/pid/random."""
    return f"{socket.gethostname()[:48]}/{os.getpid()}/{secrets.token_hex(4)}"


_HOLDER = bindparam("_holder", type_=String())
_STATES = bindparam("_states", type_=ARRAY(String()))
_NOW = bindparam("_now", type_=UTCDateTime())


def update_if_held(
    session: Session,
    rows: list[dict[str, Any]],
    holder: str,
    states: tuple[str, ...],
    now: datetime | None = None,
) -> set[int]:
    """Write these delivery rows (each to its own values, same columns) only where
    this holder still holds them in one of `states` (and, with `now`, under a live
    lease): the ids written. One statement on PostgreSQL."""
    sql = "t.claimed_by = :_holder AND t.status = ANY(:_states)"
    params: dict[str, Any] = {"_holder": holder, "_states": list(states)}
    binds: tuple[BindParameter[Any], ...] = (_HOLDER, _STATES)
    if now is not None:
        sql += " AND t.lease_until > :_now"
        params["_now"] = now
        binds += (_NOW,)

    def keep(row: Any) -> bool:
        return holds(row, holder, states, now)

    read = (Delivery.claimed_by, Delivery.status, Delivery.lease_until)
    return update_held(session, Delivery, rows, sql, params, binds, read, keep)


def holds(row: Any, holder: str, states: tuple[str, ...], now: datetime | None = None) -> bool:
    """Whether a delivery row (claimed_by, status, lease_until) is this holder's, in
    one of `states`, and (with `now`) under a live lease."""
    return (
        row.claimed_by == holder
        and row.status in states
        and (now is None or (row.lease_until is not None and row.lease_until > now))
    )


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
