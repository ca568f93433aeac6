"""The benchmarks keep working as the engine changes: each runs end to end at a tiny
size on PostgreSQL and prints its table. Their figures are not checked here (speed
belongs to the benchmarks, docs/performance.md), only that every report or path they
time still runs and is reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def admin_of(url: str) -> str:
    """The same server's maintenance database, where a benchmark creates its own."""
    found = make_url(url).set(drivername="postgresql", database="postgres")
    return found.render_as_string(hide_password=False)


def test_the_reports_benchmark_times_every_report_on_a_small_history(postgres_url: str) -> None:
    from nurture.core.reports import GROUPINGS

    done = subprocess.run(
        [sys.executable, "bench/reports.py", "--postgres-admin", admin_of(postgres_url),
         "--seed-leads", "30", "--months", "2", "--leads", "60", "--repeat", "1",
         "--write-rounds", "1", "--write-batch", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    timed = {line.split(" | ")[0].removeprefix("| ").split(" --by")[0] for line in table[2:]}
    assert set(GROUPINGS) <= timed, table
    assert "slowest:" in done.stdout and "write path, report indexes" in done.stdout
