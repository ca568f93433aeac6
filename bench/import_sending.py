"""Sending during a large import: the delivery rate with and without a CSV import running.

    python bench/import_sending.py --due 30000 --rows 50000 --databases sqlite postgres

For each database: N leads already due at the one email of
`bench/sequences/bench-one-email.yaml` (as bench/delivery.py seeds them), a dispatcher
sending them to a local SMTP sink (bench/smtp_sink.py) from a thread of this process,
as a worker does, and a `nurture leads import` of `--rows` realistic leads
(bench/intake_data.py, qualification and enrolment included, as bench/intake.py runs
it) in its own process. Four figures, measured in the same run:

1. emails/s, the dispatcher alone, over `--window` seconds;
2. emails/s while the import runs, and the import's leads/s meanwhile;
3. the import alone (the dispatcher stopped), leads/s, on a second file of new people.

What the figures mean: docs/performance.md ("Sending during an import").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from intake import Database, sequences_folder, settings_for
from intake_data import make_leads, write_csv
from machine import machine_facts
from scenario import NOW, SEQUENCE_ID, bench_settings
from smtp_sink import SinkProcess

from nurture.runtime import Runtime
from nurture.seeding import seed_due

ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Result:
    database: str
    alone: float  # emails/s, dispatcher alone
    during: float  # emails/s, during the import
    import_during: float  # leads/s, with the dispatcher sending
    import_alone: float  # leads/s, the dispatcher stopped
    errors: int  # dispatcher ticks that failed (e.g. "database is locked")


class Sender:
    """The dispatcher's ticks at the scenario's moment, in a loop, until stopped."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.stop = threading.Event()
        self.errors = 0
        self.thread = threading.Thread(target=self._loop, name="sender", daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                report = self.runtime.dispatcher.tick(NOW, max_batches=1)
            except Exception as error:  # counted: what an import does to the worker
                self.errors += 1
                say(f"  tick failed: {type(error).__name__}: {error}")
                time.sleep(0.2)
                continue
            if report.claimed == 0:
                time.sleep(0.05)

    def __enter__(self) -> Sender:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


def sent(sink: SinkProcess) -> int:
    return sink.snapshot().messages


def import_file(env: dict[str, str], path: Path) -> float:
    """`nurture leads import FILE` in its own process; its leads/s."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "nurture", "leads", "import", str(path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: some rows were refused, as planted
        raise SystemExit(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    rows = sum(1 for _ in path.open(encoding="utf-8")) - 1
    return rows / elapsed


def measure(kind: str, args: argparse.Namespace, folder: Path) -> Result:
    db = Database(kind, folder, args.postgres_admin)
    try:
        url = db.fresh()
        sequences = sequences_folder(folder, welcome=True)
        env = settings_for(url, folder, sequences)
        first, second = folder / f"{kind}-first.csv", folder / f"{kind}-second.csv"
        write_csv(make_leads(args.rows, seed=1), first, 10)
        write_csv(make_leads(args.rows, seed=2), second, 10)
        with SinkProcess("fast") as sink:
            runtime = Runtime(bench_settings(url, sink.url, args.batch_size))
            say(f"{kind}: seeding {args.due} due emails")
            seed_due(runtime, SEQUENCE_ID, args.due, NOW)
            with Sender(runtime) as sender:
                time.sleep(2)  # connections open, first batches rendered
                before, started = sent(sink), time.perf_counter()
                time.sleep(args.window)
                alone = (sent(sink) - before) / (time.perf_counter() - started)
                say(f"{kind}: alone {alone:,.0f} emails/s; importing {args.rows} leads")
                before, started = sent(sink), time.perf_counter()
                import_during = import_file(env, first)
                during = (sent(sink) - before) / (time.perf_counter() - started)
                left = args.due - sent(sink)
            if left <= 0:
                say(f"{kind}: every due email was sent before the import ended: raise --due")
            say(f"{kind}: importing {args.rows} more leads, the dispatcher stopped")
            import_alone = import_file(env, second)
            runtime.close()
        return Result(kind, alone, during, import_during, import_alone, sender.errors)
    finally:
        db.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--due", type=int, default=30_000, help="emails due at the start")
    parser.add_argument("--rows", type=int, default=50_000, help="leads per imported file")
    parser.add_argument("--window", type=float, default=20, help="seconds, dispatcher alone")
    parser.add_argument("--batch-size", type=int, default=None, help="NURTURE_BATCH_SIZE")
    parser.add_argument(
        "--databases", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"]
    )
    parser.add_argument("--postgres-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="nurture-bench-import-sending-"))
    try:
        results = [measure(kind, args, folder) for kind in args.databases]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    admin = args.postgres_admin if "postgres" in args.databases else None
    for name, value in machine_facts(admin, ("SQLAlchemy", "psycopg")):
        print(f"{name}: {value}")
    print(f"\n{args.due:,} due emails, {args.rows:,} leads per import\n")
    print("| database | emails/s alone | emails/s during import | share | import leads/s"
          " while sending | import alone | failed ticks |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        share = r.during / r.alone if r.alone else float("nan")
        print(f"| {r.database} | {r.alone:,.0f} | {r.during:,.0f} | {share:.0%} |"
              f" {r.import_during:,.0f} | {r.import_alone:,.0f} | {r.errors} |")  # fmt: skip


if __name__ == "__main__":
    main()
