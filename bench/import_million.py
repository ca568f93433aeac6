"""A million-row CSV import, as an operator runs it: `nurture leads import FILE` in
its own process, its wall time, leads/s and peak memory; next to a raw `COPY` of the
same rows into the same empty schema (PostgreSQL), or a Core insert (SQLite), in the
same run.

    python bench/import_million.py --rows 1000000 --databases postgres sqlite

The leads are bench/intake_data.py's (qualification, the example sequences and the
intake benchmark's welcome sequence: enrolment included), with 10 bad rows. The peak
memory is the import process's peak resident set (VmHWM), read while it runs.
Then the same file is imported again (every lead known, nothing changed). With
`--jobs 1 2`, PostgreSQL imports it with each number of processes in turn
(`nurture leads import FILE --jobs N`), each on an emptied schema; the peak memory is
then the sum of every process's peak. Figures: docs/performance.md ("Lead intake").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from intake import WELCOME_COUNTRIES, Database, raw_copy, raw_core, sequences_folder, settings_for
from intake_data import make_leads, write_csv
from machine import machine_facts
from sqlalchemy import create_engine, func, select

from nurture.models import Enrollment, Lead


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def peak_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM: since its exec, unlike the
    rusage of a child forked from this process, which counts this one's pages)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def family(pid: int) -> set[int]:
    """The process and its descendants (a split import's parts, their helpers)."""
    found, todo = {pid}, [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
                found.add(int(child))
                todo.append(int(child))
    return found


def imported(env: dict[str, str], csv_path: Path, jobs: int = 1) -> tuple[float, float, str]:
    """Run the command; its wall seconds, its peak resident memory in MB (read while it
    runs; with --jobs, the sum of its processes' peaks), its last line."""
    started = time.perf_counter()
    peaks: dict[int, float] = {}
    command = [sys.executable, "-m", "nurture", "leads", "import", str(csv_path)]
    if jobs > 1:
        command += ["--jobs", str(jobs)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=out,
            stderr=err,
            text=True,
        )
        while child.poll() is None:
            for pid in family(child.pid):
                with contextlib.suppress(OSError, ValueError):
                    peaks[pid] = max(peaks.get(pid, 0.0), peak_mb(pid))
            time.sleep(0.2)
        peak = sum(peaks.values())
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if child.returncode not in (0, 1):  # 1: some rows refused, as expected
            raise SystemExit(f"the import failed:\n{err.read()[-3000:]}")
        lines = [line for line in out.read().splitlines() if line.strip()]
    return seconds, peak, lines[-1] if lines else ""


def counted(url: str) -> tuple[int, int]:
    """The leads stored, and the welcome enrolments."""
    engine = create_engine(url)
    with engine.connect() as connection:
        leads = connection.scalar(select(func.count()).select_from(Lead)) or 0
        welcome = connection.scalar(
            select(func.count()).where(Enrollment.sequence_id == "intake-welcome")
        )
    engine.dispose()
    return leads, welcome or 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--databases", nargs="+", default=["postgres"])
    parser.add_argument("--postgres-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--jobs", type=int, nargs="+", default=[1], help="processes per import (PostgreSQL)"
    )
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="nurture-million-"))
    sequences = sequences_folder(folder, welcome=True)
    say(f"making {args.rows:,} leads")
    dataset = make_leads(args.rows)
    csv_path = folder / "leads.csv"
    write_csv(dataset, csv_path, 10)
    expected = dataset.expected_enrolments(WELCOME_COUNTRIES)
    lines = [f"{k}: {v}" for k, v in machine_facts(args.postgres_admin, ("SQLAlchemy",))]
    lines += ["", "| database | path | rows | seconds | leads/s | peak memory (MB) |",
              "|---|---|--:|--:|--:|--:|"]  # fmt: skip
    for kind in args.databases:
        db = Database(kind, folder, args.postgres_admin)
        try:
            url = db.fresh()
            raw = (raw_copy if kind == "postgres" else raw_core)(db, url, dataset=dataset)
            lines.append(f"| {kind} | {raw.path} | {raw.leads:,} | {raw.seconds:.1f} |"
                         f" {raw.rate:,.0f} | |")  # fmt: skip
            checks = []
            for jobs in args.jobs if kind == "postgres" else [1]:
                url = db.fresh()
                env = settings_for(url, folder, sequences)
                way = "" if jobs == 1 else f" --jobs {jobs}"
                for label in ("import, new leads", "import again, all known"):
                    say(f"{kind}: {label}{way}")
                    seconds, peak, last = imported(env, csv_path, jobs)
                    rate = args.rows / seconds
                    lines.append(
                        f"| {kind} | `nurture leads import{way}`, {label} | {args.rows:,} |"
                        f" {seconds:.1f} | {rate:,.0f} | {peak:,.0f} |"
                    )
                    say(f"  {last}")
                leads, welcome = counted(url)
                checks.append(
                    f"{kind}{way}: {leads:,} leads in the table (of {args.rows:,} good rows"
                    f" and 10 bad), {welcome:,} welcome enrolments (expected {expected:,})"
                )
            lines += ["", *checks, ""]
        finally:
            db.close()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
