"""Where the CPU went during one intake measure: this process, the app server, PostgreSQL,
and everything else on the machine (read from /proc; Linux only, else all zero)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _seconds(stat_line: str) -> float:
    after = stat_line[stat_line.rindex(")") + 2 :].split()
    return (int(after[11]) + int(after[12])) / TICK  # utime, stime (all threads)


def process_cpu(pid: int) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return _seconds(Path(f"/proc/{pid}/stat").read_text())
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            line = stat.read_text()
            if int(line[line.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return sorted(found)


def database_cpu(database: str | None) -> float:
    """CPU seconds of the PostgreSQL backends serving `database`, connected now: read while
    the connections are still open (a backend that ends takes its time with it)."""
    if database is None:
        return 0.0
    total = 0.0
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("postgres:") and f" {database} " in title:
                total += _seconds((proc / "stat").read_text())
    return total


def machine_busy() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = values
    return (user + nice + system + irq + softirq) / TICK


@dataclass(frozen=True)
class Reading:
    at: float
    machine: float
    ours: float
    server: float
    database: float


def read(server_pids: Iterable[int], database: str | None) -> Reading:
    return Reading(
        at=time.monotonic(),
        machine=machine_busy(),
        ours=process_cpu(os.getpid()),
        server=sum(process_cpu(pid) for pid in server_pids),
        database=database_cpu(database),
    )


def wait_for_quiet(limit: float, threshold: float = 0.25) -> tuple[float, float]:
    """Wait (up to `limit` seconds) until the machine is nearly idle over a 2-second
    window: other jobs on a shared machine skew the figures. Returns (seconds waited,
    cores busy in the last window)."""
    waited = 0.0
    while True:
        busy, started = machine_busy(), time.monotonic()
        time.sleep(2)
        cores = (machine_busy() - busy) / (time.monotonic() - started)
        if cores < threshold or waited >= limit:
            return waited, cores
        waited += 2


@dataclass(frozen=True)
class Usage:
    """Cores' worth of CPU (CPU seconds per wall second) used by each party."""

    ours: float
    server: float
    database: float
    others: float

    @staticmethod
    def between(before: Reading, after: Reading) -> Usage:
        wall = (after.at - before.at) or 1.0
        ours = (after.ours - before.ours) / wall
        server = (after.server - before.server) / wall
        database = max(0.0, after.database - before.database) / wall
        machine = (after.machine - before.machine) / wall
        return Usage(ours, server, database, max(0.0, machine - ours - server - database))

    @property
    def mine(self) -> float:
        """Cores used by the benchmark: this process, the app server and PostgreSQL."""
        return self.ours + self.server + self.database
