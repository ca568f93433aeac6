"""Counting requests per address in a sliding window, in this process (each web worker
counts its own: with N workers an address gets up to N times the limit)."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from datetime import datetime, timedelta


class RateLimit:
    """At most `count` posts per `window` from one address (in this process)."""

    def __init__(self, count: int = 5, window: timedelta = timedelta(minutes=1)) -> None:
        self.count = count
        self.window = window
        self._hits: dict[str, deque[datetime]] = defaultdict(deque)
        self._lock = threading.Lock()

    def exceeded(self, key: str, now: datetime) -> bool:
        """True when `key` has used up its count in the window (nothing is counted)."""
        with self._lock:
            hits = self._hits.get(key)
            if not hits:
                return False
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            return len(hits) >= self.count

    def retry_after(self, key: str, now: datetime) -> int:
        """Seconds until `key` may try again (at least 1)."""
        with self._lock:
            hits = self._hits.get(key)
            if not hits:
                return 1
            return max(1, int((hits[0] + self.window - now).total_seconds()) + 1)

    def allow(self, key: str, now: datetime) -> bool:
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.count:
                return False
            hits.append(now)
            if len(self._hits) > 50_000:  # forget the oldest addresses, memory stays bounded
                for stale in list(self._hits)[:10_000]:
                    del self._hits[stale]
            return True
