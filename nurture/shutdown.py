"""Graceful stop on SIGTERM and SIGINT, as every deploy and every Ctrl-C sends them.

The first signal stops claiming: the email on the wire finishes within
`NURTURE_SHUTDOWN_GRACE_SECONDS`, its answer is recorded, claims not yet handed to
SMTP are released at once (another worker takes them without waiting for a lease),
and the process exits 0. Should the relay hold the last message past the grace
period, the process leaves anyway and says so (exit 1): the journal keeps that
message, and the next worker on this machine settles it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from nurture.runtime import Runtime

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(runtime: Runtime, announce: Callable[[str], None]) -> threading.Event:
    """Route SIGTERM and SIGINT to `runtime.stop()`; the event is set once stopping."""
    stopping = threading.Event()

    def handle(number: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            return  # a second signal changes nothing: the grace period already runs
        announce(signal.Signals(number).name)
        runtime.stop()
        stopping.set()

    for number in SIGNALS:
        signal.signal(number, handle)
    return stopping


def finish(work: Callable[[], None], grace: float) -> bool:
    """Run `work` (stopping the scheduler, waiting for its running jobs) for at most
    `grace` seconds plus a margin; False if it did not end in time."""
    thread = threading.Thread(target=work, name="nurture-shutdown", daemon=True)
    thread.start()
    thread.join(grace + 5)
    return not thread.is_alive()
