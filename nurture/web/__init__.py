"""The HTTP layer: the only package besides the app factory and the CLI that imports Flask."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app

from nurture.runtime import Runtime


def runtime() -> Runtime:
    found: Runtime = current_app.extensions["nurture"]
    return found


def request_now() -> datetime:
    """A request reads the clock once; everything below takes it as a parameter."""
    return datetime.now(UTC)
