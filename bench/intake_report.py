"""What the intake benchmark prints: the machine, the measures as tables, the hot spots."""

from __future__ import annotations

import pstats
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from intake_cpu import Usage
from machine import machine_facts

ROOT = Path(__file__).resolve().parent.parent
NAN = float("nan")


@dataclass
class Measure:
    database: str
    path: str
    leads: int
    seconds: float
    usage: Usage
    notes: list[str] = field(default_factory=list)
    reference: float = NAN  # the raw insert's leads/s on the same database

    @property
    def rate(self) -> float:
        return self.leads / self.seconds if self.seconds else NAN

    @property
    def cpu_per_lead(self) -> float:
        """Milliseconds of CPU per lead, this process, app server and PostgreSQL together."""
        return 1000 * self.usage.mine * self.seconds / self.leads


def table(measures: list[Measure]) -> str:
    lines = [
        "| database | path | rows | seconds | leads/s | share of raw insert |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for m in measures:
        lines.append(
            f"| {m.database} | {m.path} | {m.leads} | {m.seconds:.2f} | {m.rate:,.0f} |"
            f" {m.rate / m.reference:.1%} |"
        )
    return "\n".join(lines)


def cpu_table(measures: list[Measure]) -> str:
    lines = [
        "| database | path | this process | app server | PostgreSQL | other processes"
        " | CPU ms per lead |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for m in measures:
        u = m.usage
        server = f"{u.server:.2f}" if "API" in m.path else "-"
        postgres = f"{u.database:.2f}" if m.database == "postgres" else "-"
        lines.append(
            f"| {m.database} | {m.path} | {u.ours:.2f} | {server} | {postgres} | {u.others:.2f}"
            f" | {m.cpu_per_lead:.3f} |"
        )
    return "\n".join(lines)


def machine(postgres_admin: str | None, server: str) -> list[tuple[str, str]]:
    names = ("SQLAlchemy", "psycopg", "Flask", "Werkzeug", "gunicorn", "email-validator")
    facts = machine_facts(postgres_admin, names)
    facts.append(("server", server))
    facts.append(("tree", _tree()))
    return facts


def _tree() -> str:
    """The commit measured, and the files changed in the working tree since."""

    def git(*words: str) -> str:
        found = subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True)
        return found.stdout.strip()

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line[:2] == " M"]
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"commit {head}" + (f", changed since: {', '.join(changed)}" if changed else "")


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _area(filename: str, function: str) -> str:
    """Where a function's own time belongs, for the by-area summary."""
    text_ = f"{filename} {function}"
    if "/nurture/" in filename:
        return "nurture/" + filename.split("/nurture/", 1)[1]
    for needle, label in (
        ("sqlalchemy/orm", "SQLAlchemy ORM"),
        ("sqlalchemy", "SQLAlchemy Core, engine"),
        ("psycopg", "psycopg"),
        ("sqlite3", "sqlite3 (SQLite itself)"),
        ("email_validator", "email-validator"),
        ("idna", "email-validator"),
        ("json", "json"),
        ("flask", "Flask, Werkzeug"),
        ("werkzeug", "Flask, Werkzeug"),
        ("csv", "csv"),
        ("re.", "re"),
    ):
        if needle in text_:
            return label
    return "other (stdlib, builtins)"


def hot_spots(stats: pstats.Stats, title: str, target: Path, top: int = 14) -> str:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values()) or 1.0  # own time, all functions
    areas: dict[str, float] = {}
    for (filename, _, function), entry in raw.items():
        area = _area(filename, function)
        areas[area] = areas.get(area, 0.0) + entry[2]
    lines = [
        f"### {title}: {total:.2f} s profiled ({target.name})",
        "",
        "(wall time under the profiler: waits on the database count where they happen)",
        "",
        "own time by area:",
    ]
    for area, seconds in sorted(areas.items(), key=lambda item: -item[1])[:10]:
        lines.append(f"  {seconds / total:6.1%}  {area}")
    lines += ["", "nurture functions, time including callees:"]
    ranked = sorted(
        ((key, entry) for key, entry in raw.items() if "/nurture/" in key[0]),
        key=lambda item: -item[1][3],
    )
    for (filename, _, function), entry in ranked[:top]:
        where = "nurture/" + filename.split("/nurture/", 1)[1]
        lines.append(f"  {entry[3] / total:6.1%}  {where}:{function}  ({entry[1]} calls)")
    lines += ["", "functions by own time:"]
    for (filename, line, function), entry in sorted(raw.items(), key=lambda item: -item[1][2])[
        :top
    ]:
        short = filename.split("site-packages/", 1)[-1].split("/work/main/", 1)[-1]
        lines.append(f"  {entry[2] / total:6.1%}  {short}:{line}:{function}  ({entry[1]} calls)")
    return "\n".join(lines) + "\n"
