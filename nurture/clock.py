"""The time an entry point read, carried forward by the real time elapsed since.

Entry points read the wall clock once and pass `now` down; long work (a tick that
sends for minutes) must still stamp leases, signatures and records with the time it
really is. A `Clock` starts from the `now` it was given and adds what the monotonic
clock measured since, so a test that passes a fixed `now` (or freezes time) sees that
`now`, and a worker sees the time advancing.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta


class Clock:
    def __init__(self, start: datetime, started: float | None = None) -> None:
        """`started`: the monotonic reading that goes with `start` (default: now)."""
        if start.tzinfo is None:
            raise ValueError(f"naive datetime refused: {start!r}")
        self.start = start
        self.started = time.monotonic() if started is None else started

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.started)

    @property
    def elapsed(self) -> float:
        """Seconds since `start`, by the monotonic clock."""
        return time.monotonic() - self.started


class FixedClock(Clock):
    """Always `start`: what a caller that passed a plain `now` asked for."""

    def __call__(self) -> datetime:
        return self.start


def clock_of(now: datetime | Clock) -> Clock:
    """The clock for code that accepts a running clock or a plain `now` (which then
    stays fixed: the caller chose the time, as tests and simulations do)."""
    return now if isinstance(now, Clock) else FixedClock(now)
