"""What every benchmark prints about the machine it ran on, before its own facts."""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path


def machine_facts(postgres_admin: str | None, packages: Iterable[str]) -> list[tuple[str, str]]:
    """CPU, memory, OS, Python, SQLite, PostgreSQL (when asked) and package versions."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    facts = [
        ("CPU", f"{cpu}, {os.cpu_count()} cores"),
        ("memory", memory),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("SQLite", sqlite3.sqlite_version),
    ]
    if postgres_admin is not None:
        import psycopg

        with psycopg.connect(postgres_admin, connect_timeout=10) as connection:
            row = connection.execute("SHOW server_version").fetchone()
            facts.append(("PostgreSQL", str(row[0]) if row else "unknown"))
    versions = ", ".join(f"{name} {_version(name)}" for name in packages)
    facts.append(("packages", versions))
    return facts


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"
