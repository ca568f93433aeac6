"""The benchmark's fixed scenario: the sequence, the moment, and the engine's settings."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nurture.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SEQUENCES = ROOT / "bench" / "sequences"
SEQUENCE_ID = "bench-one-email"
TEMPLATE = "eval-story-moulages-berthier"
# A Tuesday, 10:30 in Paris: inside the sequence's send window, no public holiday.
NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
SECRET = "bench-secret-key-0123456789abcdef"
BASE_URL = "https://nurture.example.com"


def bench_settings(database_url: str, smtp_url: str, batch_size: int | None = None) -> Settings:
    """The engine's settings for a run; other NURTURE_* variables (tuning) still apply."""
    overrides: dict[str, Any] = {
        "database_url": database_url,
        "smtp_url": smtp_url,
        "secret_key": SECRET,
        "sequences_dir": SEQUENCES,
        "templates_dir": ROOT / "templates",
        "base_url": BASE_URL,
    }
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    return load_settings(environ=os.environ, overrides=overrides)
