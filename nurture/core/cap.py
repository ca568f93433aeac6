"""The per-lead frequency cap shared by every sequence: defer, never drop."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta


def cap_release(sent: Iterable[datetime], emails: int, days: int, now: datetime) -> datetime | None:
    """None if one more email may leave now; else the instant a slot frees up.

    `sent` holds the send times of the lead's emails (any sequence), including the
    ones already claimed in this tick.
    """
    window = timedelta(days=days)
    recent = sorted(t for t in sent if t > now - window)
    if len(recent) < emails:
        return None
    # The slot frees when the oldest email that still counts leaves the window.
    return recent[len(recent) - emails] + window
