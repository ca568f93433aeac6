"""The HTTP layer: the only package besides the app factory and the CLI that imports Flask."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import current_app, has_app_context

from nurture.runtime import Runtime

CLOCK = "nurture_clock"
"""`app.extensions[CLOCK]`: a callable giving the app's time (aware UTC) instead of the
wall clock. `nurture demo` drives the real routes under a simulated clock this way."""


def runtime() -> Runtime:
    found: Runtime = current_app.extensions["nurture"]
    return found


def request_now() -> datetime:
    """A request reads the clock once; everything below takes it as a parameter. (The
    CLI calls it outside any app too: the wall clock then.)"""
    clock: Callable[[], datetime] | None = (
        current_app.extensions.get(CLOCK) if has_app_context() else None
    )
    return clock() if clock is not None else datetime.now(UTC)
