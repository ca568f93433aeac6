"""The relay as a whole: when it refuses everyone, pause sending instead of failing mail.

A relay that accepts no connection, or answers 421 ("service not available") to
everything, says nothing about any one message: spending each message's attempts on
it would fail every due email after the retry schedule (about two hours) and block
its lead. Instead the worker stops handing mail over, waits (10 s, doubling up to
5 minutes, with jitter), tries one message, and resumes by itself once it goes through.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

FIRST_PAUSE = 10.0
LONGEST_PAUSE = 300.0


class RelayPause:
    def __init__(self, first: float = FIRST_PAUSE, longest: float = LONGEST_PAUSE) -> None:
        self.first = first
        self.longest = longest
        self.failures = 0
        self.until: datetime | None = None
        self.reason: str | None = None

    def down(self, now: datetime, reason: str) -> datetime:
        """The relay refused as a whole at `now`: the moment to try again."""
        self.failures += 1
        seconds = min(self.first * 2 ** (self.failures - 1), self.longest)
        self.until = now + timedelta(seconds=seconds * random.uniform(0.9, 1.1))
        self.reason = reason
        return self.until

    def up(self) -> None:
        """A message went through: the relay is back."""
        self.failures = 0
        self.until = None
        self.reason = None

    def paused(self, now: datetime) -> bool:
        return self.until is not None and now < self.until
