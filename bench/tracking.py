"""Tracking benchmark: the open pixel and the click redirect under gunicorn, against a bare route.

    python bench/tracking.py

For each database (SQLite in WAL mode, PostgreSQL) and each gunicorn worker class
(sync, gthread), four targets are served by gunicorn on 127.0.0.1 (2 workers each)
and, after a warm-up, loaded by `wrk` in turn, round after round, for a fixed time:

1. bare:  a bare Flask route answering the same 42-byte GIF (bench/tracking_app.py);
2. pixel: the engine's `/o/<token>.gif`, a valid token per request, over many deliveries;
3. click: the engine's `/c/<token>`, the links emails carry now (the target travels in
   the signed token), a browser user agent, an hour after delivery (the hit written to
   the spool, the redirect);
4. click-stored: `/c/<token>/<index>`, the links emails carried before: the same, plus
   the link looked up in the database (each delivery's first click misses the cache).

It reports requests per second, latency percentiles, the pixel/bare and click/bare
ratios (the median of the rounds' own ratios) and where the CPU went, then checks that
every pixel or redirect the server answered left exactly one tracking hit once the
servers have stopped (server hooks in bench/tracking_gunicorn.py). Then it processes
those hits as `nurture worker` does (classification, event, score, stage, promotion),
reports hits processed per second, and checks that every hit became an event with a
classification.
PostgreSQL databases are `nurture_bench_tracking_<pid>`, dropped at the end. All
traffic stays on 127.0.0.1. docs/performance.md ("Tracking routes") reads the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from machine import machine_facts
from tracking_data import Database, Processing, environment, process_hits, seed, tally, write_paths
from tracking_load import BIN, Load, Server, Snapshot, cpu_shares, run_wrk
from tracking_profile import hot_spots, start_profile

TARGETS = ("bare", "pixel", "click", "click-stored")
GOAL = {"pixel": 0.60, "click": 0.40}  # click-stored: the older links, for comparison
# What readers send: a mail client fetches the pixel, a browser follows the link.
MAIL_CLIENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1"
)
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36"
)
# Another browser for the older links: each target's hits are told apart by their agent.
OTHER_BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
AGENTS = {
    "bare": MAIL_CLIENT,
    "pixel": MAIL_CLIENT,
    "click": BROWSER,
    "click-stored": OTHER_BROWSER,
}


def say(message: str) -> None:
    """Progress, on stderr; the results go to stdout."""
    print(message, file=sys.stderr, flush=True)


def machine(postgres_admin: str | None, args: argparse.Namespace) -> list[tuple[str, str]]:
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    facts = machine_facts(
        postgres_admin,
        ("gunicorn", "Flask", "Werkzeug", "SQLAlchemy", "psycopg", "itsdangerous"),
    )
    facts.append(("load generator", (wrk.stdout or wrk.stderr).split("Copyright")[0].strip()))
    facts.append(
        (
            "gunicorn",
            f"{args.workers} workers; sync, or gthread with {args.threads} threads each;"
            " no access log",
        )
    )
    facts.append(
        (
            "load",
            f"wrk, 1 thread, {args.connections} connections, keep-alive where the worker"
            f" allows it; {args.warmup:g} s warm-up, then {args.duration:g} s measured",
        )
    )
    return facts


@dataclass
class Measure:
    database: str
    worker_class: str
    target: str
    rounds: list[Load]  # one per round, in order
    warmup: Load
    cpu: dict[str, float]  # share of the machine (all cores) while this target was loaded
    busiest: str  # the busiest processes that were not ours, meanwhile
    answered: Counter[str]  # by the server, warm-up and rounds together
    rows: int  # tracking hits written meanwhile
    labels: Counter[str]  # their classifications
    wrapped: bool
    profile: list[tuple[str, float]] = field(default_factory=list)
    writes_nothing: bool = False  # the `token` prototype

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rounds)

    @property
    def per_second(self) -> float:
        seconds = sum(r.seconds for r in self.rounds)
        return self.requests / seconds if seconds else 0.0

    def latency(self, name: str) -> float:
        """A latency percentile: the median of the rounds' own (they are equal in length)."""
        return float(statistics.median(getattr(r, name) for r in self.rounds))

    def ratio(self, bare: Measure) -> float:
        """Against the bare route: the median of the rounds' own ratios. A round of each
        target runs next to the same round of the others, so each ratio compares two
        loads that met the same conditions on the machine."""
        pairs = zip(self.rounds, bare.rounds, strict=True)
        return float(statistics.median(r.per_second / b.per_second for r, b in pairs))

    @property
    def errors(self) -> tuple[int, int]:
        return (
            sum(r.status_errors for r in self.rounds),
            sum(r.socket_errors for r in self.rounds),
        )

    @property
    def expected(self) -> int:
        """What the server answered that must have left a row: pixels 200, redirects 302."""
        if self.writes_nothing:
            return 0
        if self.target == "pixel":
            return self.answered.get("/o/ 200", 0)
        if self.target.startswith("click"):
            return self.answered.get("/c/ 302", 0)
        return 0

    @property
    def lost(self) -> int:
        return self.expected - self.rows


@dataclass(frozen=True)
class ClassRun:
    """The three targets under one worker class, and what processing their hits did."""

    measures: list[Measure]
    promotions: int
    stage_changes: int
    processing: Processing | None  # None for the prototypes: nothing to process
    events: int  # opens and clicks recorded by the processing
    waiting: int  # hits still unprocessed afterwards (must be 0)
    failed: int  # hits set aside with an error (must be 0)

    @property
    def unprocessed(self) -> int:
        """Hits written but not turned into a classified event."""
        if self.processing is None:
            return 0
        rows = sum(m.rows for m in self.measures)
        return max(rows - self.events, 0) + self.waiting + self.failed


def measure_class(
    database: Database, worker_class: str, files: dict[str, Path], args: argparse.Namespace
) -> ClassRun:
    """Serve every target at once (an idle server costs nothing), warm each up, then load
    them in turn, round after round, the order rotating: other work on the machine, if
    any, weighs on all targets alike, so the ratios stay fair."""
    targets: list[str] = args.targets
    agents = {t: AGENTS[t] for t in targets}
    before = tally(database.url)
    servers: dict[str, Server] = {}
    rounds: dict[str, list[Load]] = {t: [] for t in targets}
    used: dict[str, dict[str, float]] = {t: {} for t in targets}
    others: dict[str, list[str]] = {t: [] for t in targets}
    warm: dict[str, Load] = {}
    starts = dict.fromkeys(targets, 0)
    slice_seconds = args.duration / args.rounds
    answered: dict[str, Counter[str]] = {}
    try:
        for target in targets:
            env = environment(database.url, database.spool)
            servers[target] = Server(target, worker_class, args, env)
        for target in targets:
            server = servers[target]
            warm[target] = run_wrk(
                server.port, files[target], 0, agents[target], args.warmup, args.connections
            )
            starts[target] = warm[target].requests
        for number in range(args.rounds):
            order = targets[number % len(targets) :] + targets[: number % len(targets)]
            for target in order:
                server = servers[target]
                wait_for_quiet(args)
                spy = None
                if args.profile is not None and target != "bare":
                    spy = start_profile(
                        args.profile, server.workers()[0], slice_seconds, number,
                        f"{database.kind}-{worker_class}-{target}",
                    )  # fmt: skip
                # Ours, not others': this process, py-spy, the servers of the other targets.
                idle = [other for other in servers.values() if other is not server]
                ours = {os.getpid(), *(other.process.pid for other in servers.values())}
                ours |= {pid for other in idle for pid in other.workers()}
                if spy is not None:
                    ours.add(spy.pid)
                first = Snapshot.take()
                load = run_wrk(
                    server.port,
                    files[target],
                    starts[target],
                    agents[target],
                    slice_seconds,
                    args.connections,
                )
                last = Snapshot.take()
                if spy is not None:
                    spy.wait(timeout=120)
                starts[target] += load.requests
                rounds[target].append(load)
                cpu, busiest = cpu_shares(
                    first, last, server.workers(), ours, database.name, load.cpu
                )
                for key, share in cpu.items():
                    used[target][key] = used[target].get(key, 0.0) + share / args.rounds
                if busiest:
                    others[target].append(busiest)
    finally:
        for target, server in servers.items():
            answered[target] = server.stop()  # each worker writes its spool's rest first
    written = tally(database.url)
    processing = None
    if args.prototype is None:
        say(f"  processing {sum(written.hits.values()) - sum(before.hits.values())} hits")
        processing = process_hits(database, args.process_batch)
    after = tally(database.url)
    measures = []
    for target in targets:
        kind = {"pixel": "open", "click": "click", "click-stored": "click"}.get(target)
        labels = (
            (after.labels(agents[target]) - before.labels(agents[target])) if kind else Counter()
        )
        profile: list[tuple[str, float]] = []
        if args.profile is not None and target != "bare":
            profile = hot_spots(args.profile, f"{database.kind}-{worker_class}-{target}")
        lines = len(files[target].read_text().splitlines())
        measures.append(
            Measure(
                database=database.kind,
                worker_class=worker_class,
                target=target,
                rounds=rounds[target],
                warmup=warm[target],
                cpu=used[target],
                busiest="; ".join(others[target]),
                answered=answered[target],
                rows=sum((written.labels(agents[target]) - before.labels(agents[target])).values())
                if kind
                else 0,
                labels=labels,
                wrapped=starts[target] > lines,
                profile=profile,
                writes_nothing=args.prototype == "token" or target == "bare",
            )
        )
    return ClassRun(
        measures,
        promotions=after.promotions - before.promotions,
        stage_changes=after.stage_changes - before.stage_changes,
        processing=processing,
        events=after.events - before.events,
        waiting=sum(n for k, n in after.hits.items() if k.endswith(" waiting")),
        failed=after.failed - before.failed,
    )


def busy_share(seconds: float = 1.0) -> float:
    """How busy the whole machine is, over a short look."""
    first = Snapshot.take()
    time.sleep(seconds)
    last = Snapshot.take()
    return (last.busy - first.busy) / ((last.total - first.total) or 1.0)


def wait_for_quiet(args: argparse.Namespace) -> None:
    """Before loading, wait (up to `--quiet-wait` seconds) until other work has stopped."""
    deadline = time.monotonic() + args.quiet_wait
    busy = busy_share()
    while busy > args.noise and time.monotonic() < deadline:
        time.sleep(1)
        busy = busy_share()


def table(measures: list[Measure]) -> str:
    lines = [
        "| database | workers | target | req/s | vs bare | goal | p50 ms | p99 ms"
        " | CPU: workers / PostgreSQL / wrk / kernel / others | rows = answers |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    bare = {(m.database, m.worker_class): m for m in measures if m.target == "bare"}
    for m in measures:
        base = bare.get((m.database, m.worker_class))
        ratio = m.ratio(base) if base else 0.0
        goal = GOAL.get(m.target)
        verdict = "" if goal is None else f"{goal:.0%} {'met' if ratio >= goal else 'missed'}"
        cpu = " / ".join(
            "–" if k == "postgres" and m.database != "postgres" else f"{m.cpu.get(k, 0):.0%}"
            for k in ("workers", "postgres", "wrk", "kernel", "other")
        )
        check = "–" if m.writes_nothing else f"{m.rows} = {m.expected}"
        if m.lost > 0:
            check += f" (**{m.lost} lost**)"
        elif m.lost < 0:
            check += f" (**{-m.lost} too many**)"
        lines.append(
            f"| {m.database} | {m.worker_class} | {m.target} | {m.per_second:,.0f}"
            f" | {'' if m.target == 'bare' else f'{ratio:.0%}'} | {verdict}"
            f" | {m.latency('p50_ms'):.1f} | {m.latency('p99_ms'):.1f} | {cpu} | {check} |"
        )
    return "\n".join(lines)


def details(runs: list[ClassRun]) -> str:
    lines = []
    for run in runs:
        for m in run.measures:
            status, socket = m.errors
            rounds = ", ".join(f"{r.per_second:,.0f}" for r in m.rounds)
            extra = ""
            if m.target != "bare":
                labels = ", ".join(f"{k}: {v}" for k, v in sorted(m.labels.items()))
                extra = f"; hits {labels or 'none'}" + (
                    "; paths wrapped around (deliveries hit twice)" if m.wrapped else ""
                )
            lines.append(
                f"- {m.database}/{m.worker_class}/{m.target}: {m.requests} requests"
                f" (req/s by round: {rounds}; warm-up {m.warmup.requests}),"
                f" {status} non-2xx/3xx, {socket} socket errors;"
                f" p90 {m.latency('p90_ms'):.1f} ms, max {max(r.max_ms for r in m.rounds):.1f} ms;"
                f" machine busy {m.cpu.get('machine', 0):.0%}"
                + (f", others: {m.busiest}" if m.busiest else "")
                + extra
            )
        lines.append(
            f"- {run.measures[0].database}/{run.measures[0].worker_class}: processing the"
            f" clicks moved {run.stage_changes} stages and made {run.promotions} promotions"
        )
    return "\n".join(lines)


def processing_table(runs: list[ClassRun]) -> str:
    lines = [
        "| database | workers | hits | processed | hits/s | events | unprocessed"
        " | recovered from spool files |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        p = run.processing
        if p is None:
            continue
        first = run.measures[0]
        rows = sum(m.rows for m in run.measures)
        lines.append(
            f"| {first.database} | {first.worker_class} | {rows} | {p.processed}"
            f" | {p.per_second:,.0f} | {run.events} | {run.unprocessed} | {p.recovered} |"
        )
    return "\n".join(lines)


def profiles(measures: list[Measure]) -> str:
    parts = []
    for m in measures:
        if not m.profile:
            continue
        *rows, (_, samples) = m.profile
        parts.append(
            f"\n{m.database}/{m.worker_class}/{m.target}: share of request time"
            f" ({samples:.0f} samples)"
        )
        parts += [f"  {share:6.1%}  {key}" for key, share in rows]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--worker-classes", nargs="+", default=["sync", "gthread"])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="per gthread worker")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per target")
    parser.add_argument("--rounds", type=int, default=3, help="the duration is split in rounds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument(
        "--deliveries", type=int, default=40000, help="per worker class (each hit once)"
    )
    parser.add_argument(
        "--process-batch", type=int, default=500, help="hits per processing transaction"
    )
    parser.add_argument("--promote-share", type=float, default=0.01)
    parser.add_argument("--mql-share", type=float, default=0.05)
    parser.add_argument("--postgres-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--profile", type=Path, help="folder: py-spy on one worker while loading")
    parser.add_argument(
        "--noise",
        type=float,
        default=0.10,
        help="share of the machine other work may take before a round waits for quiet",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="seconds a round waits, at most, for other work to stop",
    )
    parser.add_argument(
        "--prototype",
        choices=("token", "insert", "batch", "group"),
        help="serve pixel and click from bench/tracking_prototype.py (floors, not the engine)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    if not (BIN / "gunicorn").exists():
        raise SystemExit(f"gunicorn not found in {BIN}: pip install gunicorn")
    if args.profile is not None and not (BIN / "py-spy").exists():
        raise SystemExit(f"py-spy not found in {BIN}: pip install py-spy")
    # A stopped run still stops its servers and drops its database.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    args.folder = Path(tempfile.mkdtemp(prefix="nurture-bench-tracking-"))
    postgres = "postgres" in args.databases
    facts = machine(args.postgres_admin if postgres else None, args)
    runs: list[ClassRun] = []
    try:
        for kind in args.databases:
            database = Database(kind, args.folder, args.postgres_admin)
            try:
                classes = args.worker_classes
                say(f"{kind}: seeding {args.deliveries * len(classes)} leads and deliveries")
                seeded = seed(
                    database.url,
                    args.deliveries * len(classes),
                    datetime.now(UTC),
                    args.promote_share,
                    args.mql_share,
                )
                say(f"{kind}: seeded in {seeded.seconds:.1f} s")
                for k, worker_class in enumerate(classes):
                    part = seeded.deliveries[k * args.deliveries : (k + 1) * args.deliveries]
                    folder = args.folder / f"{kind}-{worker_class}"
                    folder.mkdir()
                    say(f"{kind}/{worker_class}: measuring {', '.join(args.targets)}")
                    run = measure_class(database, worker_class, write_paths(folder, part), args)
                    for m in run.measures:
                        say(
                            f"  {m.target}: {m.per_second:,.0f} req/s,"
                            f" p99 {m.latency('p99_ms'):.1f} ms, rows {m.rows} / answers"
                            f" {m.expected}, others took {m.cpu.get('other', 0):.0%}"
                        )
                    runs.append(run)
            finally:
                database.drop()
    finally:
        if args.keep:
            say(f"kept {args.folder}")
        else:
            shutil.rmtree(args.folder, ignore_errors=True)
    measures = [m for run in runs for m in run.measures]
    print("\n".join(f"- {name}: {value}" for name, value in facts))
    print()
    print(table(measures))
    print()
    print(details(runs))
    if args.prototype is None:
        print()
        print(processing_table(runs))
    if args.profile is not None:
        print(profiles(measures))
    wrong = [m for m in measures if m.lost]
    if wrong:
        raise SystemExit(
            "check failed: rows differ from answers for "
            + ", ".join(f"{m.database}/{m.worker_class}/{m.target}" for m in wrong)
        )
    unprocessed = sum(run.unprocessed for run in runs)
    if unprocessed:
        raise SystemExit(f"check failed: {unprocessed} hits did not become a classified event")


if __name__ == "__main__":
    main()
