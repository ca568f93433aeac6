"""A million-row CSV import, as an operator runs it: `nurture leads import FILE` in
its own process, its wall time, leads/s and peak memory; next to a raw `COPY` of the
same rows into the same empty schema (PostgreSQL), or a Core insert (SQLite), in the
same run.

    python bench/import_million.py --rows 1000000 --databases postgres sqlite

The leads are bench/intake_data.py's (qualification, the example sequences and the
intake benchmark's welcome sequence: enrolment included), with 10 bad rows. The peak
memory is the import process's peak resident set (VmHWM), read while it runs.
Then the same file is imported again (every lead known, nothing changed). Figures:
docs/performance.md ("Lead intake").
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


def imported(env: dict[str, str], csv_path: Path) -> tuple[float, float, str]:
    """Run the command; its wall seconds, its peak resident memory in MB (read while it
    runs), its last line."""
    started = time.perf_counter()
    peak = 0.0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "nurture", "leads", "import", str(csv_path)],
            env={**os.environ, **env},
            stdout=out,
            stderr=err,
            text=True,
        )
        while child.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                peak = max(peak, peak_mb(child.pid))
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if child.returncode not in (0, 1):  # 1: some rows refused, as expected
            raise SystemExit(f"the import failed:\n{err.read()[-3000:]}")
        lines = [line for line in out.read().splitlines() if line.strip()]
    return seconds, peak, lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--databases", nargs="+", default=["postgres"])
    parser.add_argument("--postgres-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
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
            url = db.fresh()
            env = settings_for(url, folder, sequences)
            for label in ("import, new leads", "import again, all known"):
                say(f"{kind}: {label}")
                seconds, peak, last = imported(env, csv_path)
                rate = args.rows / seconds
                lines.append(f"| {kind} | `nurture leads import`, {label} | {args.rows:,} |"
                             f" {seconds:.1f} | {rate:,.0f} | {peak:,.0f} |")  # fmt: skip
                say(f"  {last}")
            engine = create_engine(url)
            with engine.connect() as connection:
                leads = connection.scalar(select(func.count()).select_from(Lead))
                welcome = connection.scalar(
                    select(func.count()).where(Enrollment.sequence_id == "intake-welcome")
                )
            engine.dispose()
            lines.append("")
            lines.append(f"{kind}: {leads:,} leads in the table (of {args.rows:,} good rows"
                         f" and 10 bad), {welcome:,} welcome enrolments"
                         f" (expected {expected:,})")  # fmt: skip
            lines.append("")
        finally:
            db.close()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
