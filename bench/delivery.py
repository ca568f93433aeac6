"""Delivery benchmark: due steps -> rendered -> delivered to a local SMTP sink, in emails/s.

    python bench/delivery.py --sizes 10000 100000 --databases sqlite postgres

For each database and size N it seeds N leads already due at the one email of
`bench/sequences/bench-one-email.yaml`, copies that database, and measures in one run:

1. the engine: `Dispatcher.tick(now)` with a real `SmtpMailer` until all N are sent;
2. the naive pipeline (bench/naive.py) on the first due rows of the same data;
3. the raw limit (bench/raw.py): N pre-built messages pushed over as many SMTP
   connections as the engine used (one per worker).

The sink (bench/smtp_sink.py) runs in its own process; every phase is checked against
the Message-IDs it received. PostgreSQL databases are created as `nurture_bench_<pid>_*`
and dropped at the end; all traffic stays on 127.0.0.1. docs/performance.md explains
the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machine import machine_facts
from scenario import NOW, SECRET, SEQUENCE_ID, bench_settings
from smtp_sink import HOST, SinkProcess
from sqlalchemy import func, select, text

from nurture.db import upgrade
from nurture.dispatch import TickReport
from nurture.models import Delivery
from nurture.runtime import Runtime
from nurture.seeding import seed_due

NAN = float("nan")


def say(message: str) -> None:
    """Progress, on stderr; the results go to stdout."""
    print(message, file=sys.stderr, flush=True)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"check failed: {message}")


# --- the machine ----------------------------------------------------------------------


def machine(postgres_admin: str | None) -> list[tuple[str, str]]:
    return machine_facts(
        postgres_admin, ("SQLAlchemy", "psycopg", "Jinja2", "premailer", "aiosmtpd")
    )


def postgres_cpu(database: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to `database` (/proc).

    A backend that ends between two readings takes its time with it: read while the
    connections are open.
    """
    ticks = 0
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if f" {database} " not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            line = (proc / "stat").read_text()
            after = line[line.rindex(")") + 2 :].split()
            ticks += int(after[11]) + int(after[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def busy_cpu() -> float:
    """CPU seconds the whole machine has spent busy (all cores, from /proc/stat)."""
    fields_ = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields_[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(limit: float, threshold: float = 0.15) -> float:
    """Wait (up to `limit` seconds) until other processes have left the machine idle for
    two 3-second windows in a row; returns the seconds waited. Shared machines run other
    jobs, and a figure taken meanwhile says little."""
    started, calm, said = time.monotonic(), 0, 0.0
    while calm < 2:
        busy, window = busy_cpu(), time.monotonic()
        time.sleep(3)
        cores = (busy_cpu() - busy) / (time.monotonic() - window)
        calm = calm + 1 if cores < threshold else 0
        waited = time.monotonic() - started
        if waited >= limit:
            break
        if calm == 0 and waited - said >= 60:
            say(f"  waiting for the machine to be idle ({cores:.1f} cores busy elsewhere)")
            said = waited
    return time.monotonic() - started


class Meter:
    """CPU around one phase: the PostgreSQL server's share for our database, and what
    other processes on the machine used meanwhile (they disturb the figures)."""

    def __init__(self, url: str) -> None:
        self.database = None if url.startswith("sqlite") else url.rsplit("/", 1)[1]
        self.started = time.monotonic()
        self.busy = busy_cpu()
        self.server_started = postgres_cpu(self.database) if self.database else 0.0
        self.server_seconds = NAN

    def read_server(self) -> None:
        """Call at the end of the work, while the database connections are still open."""
        if self.database:
            self.server_seconds = postgres_cpu(self.database) - self.server_started

    def others(self, mine: float) -> float:
        """Cores' worth of CPU used since the start by everything but `mine` (seconds)
        and our PostgreSQL backends."""
        server = 0.0 if self.server_seconds != self.server_seconds else self.server_seconds
        wall = time.monotonic() - self.started
        return max(0.0, busy_cpu() - self.busy - mine - server) / wall


class Autoanalyze:
    """What autovacuum does for plans, where the server has it switched off.

    Plans follow statistics: with autovacuum off, `deliveries` would be planned all run
    long as the empty table it was at seeding, and reads by lead or enrollment would
    scan it whole (PostgreSQL's default is on: its statistics follow within a minute).
    Every 60 s, autovacuum's default naptime, the tables a run writes are analysed on
    one connection kept open, so the Meter counts that CPU as the server's.
    """

    TABLES = "leads, enrollments, deliveries"

    def __init__(self, url: str, every: float = 60.0) -> None:
        self.url, self.every = url, every
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.connection: Any = None
        self.runs = 0

    def __enter__(self) -> Autoanalyze:
        if self.url.startswith("sqlite"):
            return self
        import psycopg

        self.connection = psycopg.connect(self.url, autocommit=True)
        if self.connection.execute("SHOW autovacuum").fetchone()[0] == "on":
            return self
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            self.connection.execute(f"ANALYZE {self.TABLES}")
            self.runs += 1

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
            say(f"  autovacuum is off on this server: ANALYZE ran {self.runs} times in its place")
        if self.connection is not None:
            self.connection.close()


def pin(how: str, sink: SinkProcess) -> str:
    """Place this process and the sink on CPUs; returns how, for the header."""
    cpus = sorted(os.sched_getaffinity(0))
    if how == "none" or len(cpus) < 2:
        return "not pinned (the scheduler places both)"
    if how == "shared":
        os.sched_setaffinity(0, {cpus[0]})
        os.sched_setaffinity(sink.pid, {cpus[0]})
        return f"benchmark and sink pinned together on CPU {cpus[0]}"
    os.sched_setaffinity(0, set(cpus[:-1]))
    os.sched_setaffinity(sink.pid, {cpus[-1]})
    return f"sink pinned alone on CPU {cpus[-1]}, benchmark on CPUs {cpus[:-1]}"


# --- databases ------------------------------------------------------------------------


class Databases:
    """Throwaway databases: files in a temporary folder, or `nurture_bench_<pid>_<name>`."""

    def __init__(self, postgres_admin: str) -> None:
        self.postgres_admin = postgres_admin
        self.folder = Path(tempfile.mkdtemp(prefix="nurture-bench-"))
        self.created: list[str] = []

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.postgres_admin, autocommit=True, connect_timeout=10) as c:
            c.execute(statement)  # type: ignore[arg-type]

    def _name(self, name: str) -> str:
        return f"nurture_bench_{os.getpid()}_{name}"

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.sqlite"

    def url(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self._path(name)}"
        return f"{self.postgres_admin.rsplit('/', 1)[0]}/{self._name(name)}"

    def create(self, kind: str, name: str, copy_of: str | None = None) -> str:
        """A new database, empty or a copy of another (closed) one."""
        if kind == "sqlite":
            if copy_of is not None:
                shutil.copyfile(self._path(copy_of), self._path(name))
            return self.url(kind, name)
        self.drop(kind, name)
        template = f' TEMPLATE "{self._name(copy_of)}"' if copy_of else ""
        self._admin(f'CREATE DATABASE "{self._name(name)}"{template}')
        self.created.append(self._name(name))
        return self.url(kind, name)

    def drop(self, kind: str, name: str) -> None:
        if kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self._path(name)}{suffix}").unlink(missing_ok=True)
            return
        self._admin(f'DROP DATABASE IF EXISTS "{self._name(name)}" WITH (FORCE)')
        if self._name(name) in self.created:
            self.created.remove(self._name(name))

    def close(self) -> None:
        for database in list(self.created):
            with contextlib.suppress(Exception):
                self._admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(self.folder, ignore_errors=True)


def seed(
    databases: Databases, kind: str, size: int, sink_url: str, sequence: str = SEQUENCE_ID
) -> float:
    """The `seed` database with `size` due enrollments; returns the seeding time."""
    url = databases.create(kind, "seed")
    upgrade(url)
    runtime = Runtime(bench_settings(url, sink_url))
    started = time.perf_counter()
    seed_due(runtime, sequence, size, NOW)
    seconds = time.perf_counter() - started
    if kind == "postgres":
        with runtime.engine.begin() as connection:
            connection.execute(text("ANALYZE"))  # as autovacuum soon would; stable plans
    runtime.close()
    if kind == "sqlite":  # fold the write-ahead log into the file, so a copy is whole
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return seconds


# --- the engine -----------------------------------------------------------------------


class Stages:
    """Where the dispatcher's time goes (`--breakdown`), by wrapping its methods.

    For each stage: wall time, and CPU time of the thread that ran it. The SMTP send
    runs on the dispatcher's sender thread while the next chunk renders, so wall times
    overlap. A wrapper costs about a microsecond per call; stages that this tree's
    dispatcher does not have are left out.
    """

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def wrap(self, target: Any, name: str, label: str) -> None:
        original = getattr(target, name, None)
        if original is None:
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - wall
                self.cpu[label] = self.cpu.get(label, 0.0) + time.thread_time() - cpu

        setattr(target, name, timed)

    def instrument(self, dispatcher: Any) -> None:
        import nurture.dispatch

        for name in ("_claim", "_render", "_hand_over", "_record"):
            self.wrap(dispatcher, name, name.lstrip("_"))
        # Parts of `render`, indented in the report.
        self.wrap(dispatcher.tokens, "unsubscribe", "  token")
        self.wrap(dispatcher.content.templates, "render", "  templates")
        for builder in ("build", "build_message"):
            self.wrap(nurture.dispatch, builder, "  message")
        self.wrap(dispatcher.mailer, "send", "smtp send")  # its connection opens later

    def report(self, size: int) -> str:
        lines = [f"  {'stage':<12} {'wall s':>7} {'CPU s':>7} {'CPU µs/email':>13}"]
        for label in self.wall:
            lines.append(
                f"  {label:<12} {self.wall[label]:7.2f} {self.cpu[label]:7.2f} "
                f"{1e6 * self.cpu[label] / size:13.0f}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class EngineRun:
    rate: float
    report: str
    cpu: float  # µs per email, the engine's process(es)
    server_cpu: float  # µs per email, the PostgreSQL server (NaN on SQLite)
    sink_cpu: float  # µs per email, the sink
    others: float  # cores used by other processes meanwhile


def check_engine(url: str, size: int, sent: int, sink: SinkProcess, detail: str) -> None:
    """Everything sent once, as the database and the sink both say."""
    arrivals = sink.snapshot()
    runtime = Runtime(bench_settings(url, sink.url))
    with runtime.sessions() as session:
        sent_ids = {
            f"<{message_id}>"
            for message_id in session.scalars(
                select(Delivery.message_id).where(Delivery.status == "sent")
            )
        }
        unsent = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status != "sent")
        )
    runtime.close()
    expect(sent == size, f"engine sent {sent} of {size} ({detail})")
    expect(arrivals.messages == size, f"sink got {arrivals.messages} messages, expected {size}")
    expect(len(arrivals.ids) == size, f"sink got {len(arrivals.ids)} distinct Message-IDs")
    expect(arrivals.ids == sent_ids, "the sink's Message-IDs differ from the sent deliveries")
    expect(unsent == 0, f"{unsent} deliveries not sent")


def run_engine(
    url: str, size: int, sink: SinkProcess, args: argparse.Namespace, profile: Path | None
) -> EngineRun:
    """One dispatcher in this process: tick until everything due is sent."""
    from workers import mailer_factory

    settings = bench_settings(url, sink.url, args.batch_size)
    runtime = Runtime(settings, mailer_factory(sink.url, args.prototype))
    dispatcher = runtime.dispatcher
    runtime.content  # noqa: B018 - sequence files are read and checked before the clock starts
    stages = Stages()
    if args.breakdown:
        stages.instrument(dispatcher)
    profiler = cProfile.Profile() if profile is not None else None
    wait_for_quiet(args.quiet_wait)
    sink.reset()
    meter = Meter(url)
    deadline = time.monotonic() + args.timeout
    total = TickReport()
    cpu, started = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    while total.sent < size and time.monotonic() < deadline:
        report = dispatcher.tick(NOW, max_batches=20)  # a few batches: the deadline is seen
        total.add(report)
        if report.claimed == 0:
            break
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    meter.read_server()
    sink_cpu = sink.snapshot().cpu_seconds
    others = meter.others(cpu + sink_cpu)
    dispatcher.close()
    runtime.close()
    check_engine(url, size, total.sent, sink, str(total))
    if args.breakdown:
        say(f"engine stages, {size:,} emails in {seconds:.2f} s:\n{stages.report(size)}")
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        say(f"profile written to {profile}; the engine ran slower under it\n{out.getvalue()}")
    per = 1e6 / size
    server = meter.server_seconds
    return EngineRun(size / seconds, str(total), cpu * per, server * per, sink_cpu * per, others)


def run_engine_workers(
    url: str, size: int, sink: SinkProcess, args: argparse.Namespace
) -> EngineRun:
    """`--workers K` dispatchers, each its own process and SMTP connection."""
    from workers import engine_worker, together

    meters: list[Meter] = []

    def start() -> None:
        wait_for_quiet(args.quiet_wait)
        sink.reset()
        meters.append(Meter(url))

    deadline = time.monotonic() + args.timeout + args.quiet_wait
    arguments = [(url, sink.url, args.batch_size, deadline, args.prototype)] * args.workers
    seconds, results = together(
        engine_worker, arguments, args.timeout + 60, start, lambda: meters[0].read_server()
    )
    meter = meters[0]
    cpu = sum(r.cpu for r in results)
    sink_cpu = sink.snapshot().cpu_seconds
    others = meter.others(cpu + sink_cpu)
    sent = sum(r.sent for r in results)
    check_engine(url, size, sent, sink, "; ".join(r.detail for r in results))
    shares = "/".join(str(r.sent) for r in results)
    per = 1e6 / size
    return EngineRun(
        size / seconds,
        f"{args.workers} workers sent {shares}",
        cpu * per,
        meter.server_seconds * per,
        sink_cpu * per,
        others,
    )


# --- naive and raw --------------------------------------------------------------------


@dataclass(frozen=True)
class NaiveRun:
    rate: float
    sample: int
    cpu: float  # µs per email: this process and, on PostgreSQL, its server backend
    others: float


def run_naive_phase(url: str, size: int, sink: SinkProcess, args: argparse.Namespace) -> NaiveRun:
    from naive import run_naive  # imported here: premailer's import is not the engine's cost

    sample = size if args.naive_sample <= 0 else min(size, args.naive_sample)
    settings = bench_settings(url, sink.url)
    wait_for_quiet(args.quiet_wait)
    sink.reset()
    meter, cpu = Meter(url), time.process_time()
    deadline = time.monotonic() + args.timeout
    naive = run_naive(url, settings, SECRET, sink.url, NOW, sample, deadline, meter.read_server)
    cpu = time.process_time() - cpu
    arrivals = sink.snapshot()
    others = meter.others(cpu + arrivals.cpu_seconds)
    if meter.server_seconds == meter.server_seconds:  # PostgreSQL: its backend works too
        cpu += meter.server_seconds
    expect(naive.sent > 0, "the naive pipeline sent nothing before the deadline")
    expect(arrivals.messages == naive.sent, f"naive: sink got {arrivals.messages} messages")
    expect(arrivals.ids == naive.message_ids, "naive: the sink's Message-IDs differ")
    return NaiveRun(naive.sent / naive.seconds, naive.sent, 1e6 * cpu / naive.sent, others)


@dataclass(frozen=True)
class RawPhase:
    rate: float  # the best run's
    rates: list[float]
    message_bytes: int
    client_cpu: float  # µs per email, in the best run
    sink_cpu: float
    others: float


def run_raw_phase(size: int, sink: SinkProcess, args: argparse.Namespace) -> RawPhase:
    """The best of `--raw-repeat` runs: it is a limit, and scheduling makes it noisy."""
    from raw import build_payloads, run_raw

    payloads: list[tuple[str, bytes]] = []
    sender = ""
    if args.workers == 1:
        settings = bench_settings("sqlite:///unused", sink.url)
        runtime = Runtime(settings)
        payloads = build_payloads(runtime.content.templates, runtime.dispatcher.sender, size, NOW)
        sender = settings.sender_email
        runtime.close()
    best: RawPhase | None = None
    rates: list[float] = []
    meters: list[Meter] = []

    def start() -> None:
        wait_for_quiet(args.quiet_wait)
        sink.reset()
        meters.append(Meter("sqlite:///none"))

    for _ in range(max(args.raw_repeat, 1)):
        if args.workers == 1:
            start()
            cpu = time.process_time()
            pipelining = "smtp-pipelining" in args.prototype
            raw = run_raw(HOST, sink.port, sender, payloads, pipelining)
            cpu = time.process_time() - cpu  # includes listing the Message-IDs: small
            seconds, ids, mean_bytes = raw.seconds, raw.message_ids, raw.mean_bytes
        else:
            seconds, ids, cpu, mean_bytes = raw_workers(size, sink, args, start)
        meter = meters[-1]
        arrivals = sink.snapshot()
        expect(arrivals.messages == size, f"raw: sink got {arrivals.messages} of {size}")
        expect(arrivals.ids == ids, "raw: the sink's Message-IDs differ")
        rates.append(size / seconds)
        if best is None or rates[-1] > best.rate:
            per = 1e6 / size
            others = meter.others(cpu + arrivals.cpu_seconds)
            sink_cpu = arrivals.cpu_seconds * per
            best = RawPhase(rates[-1], rates, mean_bytes, cpu * per, sink_cpu, others)
    assert best is not None
    return best


def raw_workers(
    size: int, sink: SinkProcess, args: argparse.Namespace, start: Callable[[], None]
) -> tuple[float, frozenset[str], float, int]:
    from workers import raw_sender, together

    share, extra = divmod(size, args.workers)
    arguments, first = [], 1
    for index in range(args.workers):
        count = share + (1 if index < extra else 0)
        arguments.append((first, count, HOST, sink.port, "smtp-pipelining" in args.prototype))
        first += count
    seconds, results = together(raw_sender, arguments, args.timeout, start)
    ids = frozenset().union(*(r.message_ids for r in results))
    return seconds, ids, sum(r.cpu for r in results), 0


# --- one row of the table -------------------------------------------------------------


@dataclass
class Row:
    database: str
    size: int
    engine_rate: float = NAN
    naive_rate: float = NAN
    naive_sample: int = 0
    raw_rate: float = NAN
    message_bytes: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # µs per email, by process
    others: dict[str, float] = field(default_factory=dict)  # other processes' cores, by phase

    @property
    def ratio(self) -> float:
        return self.engine_rate / self.naive_rate

    @property
    def of_raw(self) -> float:
        return 100 * self.engine_rate / self.raw_rate


def run_row(
    databases: Databases, kind: str, size: int, sink: SinkProcess, args: argparse.Namespace
) -> Row:
    row = Row(kind, size)
    tag = f"[{kind} {size:,}]"
    if "engine" in args.phases or "naive" in args.phases:
        say(f"\n{tag} seeding {size:,} due enrollments")
        seconds = seed(databases, kind, size, sink.url, args.sequence)
        say(f"{tag} seeded in {seconds:.1f} s")
        for phase in ("engine", "naive"):
            if phase in args.phases:
                databases.create(kind, phase, copy_of="seed")
        databases.drop(kind, "seed")

    if "engine" in args.phases:
        url = databases.url(kind, "engine")
        with Autoanalyze(url):
            if args.workers > 1:
                engine = run_engine_workers(url, size, sink, args)
            else:
                profile = None
                if args.profile is not None:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    profile = args.profile / f"engine-{kind}-{size}.prof"
                engine = run_engine(url, size, sink, args, profile)
        databases.drop(kind, "engine")
        row.engine_rate = engine.rate
        row.cpu.update(engine=engine.cpu, server=engine.server_cpu, sink=engine.sink_cpu)
        row.others["engine"] = engine.others
        say(f"{tag} engine: {engine.rate:,.0f} emails/s ({engine.report}){_busy(engine.others)}")

    if "naive" in args.phases:
        with Autoanalyze(databases.url(kind, "naive")):
            naive = run_naive_phase(databases.url(kind, "naive"), size, sink, args)
        databases.drop(kind, "naive")
        row.naive_rate, row.naive_sample = naive.rate, naive.sample
        row.others["naive"] = naive.others
        row.cpu["naive"] = naive.cpu
        say(
            f"{tag} naive: {naive.rate:,.1f} emails/s on the first {naive.sample:,} due rows"
            + _busy(naive.others)
        )

    if "raw" in args.phases:
        raw = run_raw_phase(size, sink, args)
        row.raw_rate, row.message_bytes = raw.rate, raw.message_bytes
        row.cpu.update(raw_client=raw.client_cpu, raw_sink=raw.sink_cpu)
        row.others["raw"] = raw.others
        runs = ", ".join(f"{rate:,.0f}" for rate in raw.rates)
        size_note = f"; {raw.message_bytes:,} bytes a message" if raw.message_bytes else ""
        say(
            f"{tag} raw: best {raw.rate:,.0f} emails/s (runs: {runs}{size_note})"
            + _busy(raw.others)
        )
    return row


BUSY = 0.2  # cores used by other processes above which a figure is marked disturbed


def _busy(others: float) -> str:
    if others < BUSY:
        return ""
    return f" — other processes used {others:.1f} cores meanwhile: figure disturbed"


# --- output ---------------------------------------------------------------------------


def _figure(value: float, form: str, suffix: str = "") -> str:
    return "–" if value != value else format(value, form) + suffix  # NaN: not measured


def table(rows: list[Row], args: argparse.Namespace, batch_size: int) -> str:
    lines = [
        "| database | N | engine emails/s | naive emails/s | raw emails/s "
        "| engine/naive | engine/raw |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    disturbed = False
    for row in rows:
        marks = {k: " †" if v >= BUSY else "" for k, v in row.others.items()}
        disturbed = disturbed or any(marks.values())
        naive = _figure(row.naive_rate, ",.1f")
        if row.naive_sample and row.naive_sample < row.size:
            naive += f" (first {row.naive_sample:,})*"
        lines.append(
            f"| {row.database} | {row.size:,} "
            f"| {_figure(row.engine_rate, ',.0f')}{marks.get('engine', '')} "
            f"| {naive}{marks.get('naive', '')} "
            f"| {_figure(row.raw_rate, ',.0f')}{marks.get('raw', '')} "
            f"| {_figure(row.ratio, '.1f', '×')} | {_figure(row.of_raw, '.0f', ' %')} |"
        )
    connections = "one SMTP connection" if args.workers == 1 else f"{args.workers} connections"
    lines += [
        "",
        "* naive measured on the first due rows only; that rate stands for all N.",
        f"Engine: {args.workers} worker(s), batch size {batch_size}; {connections} for engine "
        f"and raw; raw is the best of {args.raw_repeat} runs.",
        "Targets: engine/naive ≥ 5×, engine/raw ≥ 60 %.",
    ]
    if disturbed:
        lines.append(f"† other processes used ≥ {BUSY} cores during that measurement.")
    return "\n".join(lines)


def cpu_table(rows: list[Row]) -> str:
    columns = (
        ("engine", "engine"),
        ("server", "PostgreSQL server"),
        ("sink", "sink (engine run)"),
        ("naive", "naive (with its server)"),
        ("raw_client", "raw client"),
        ("raw_sink", "sink (raw run)"),
    )
    phases = ("engine", "naive", "raw")
    lines = [
        "CPU time per email, µs, by process (one core gives 1e6 / µs emails per second):",
        "",
        "| database | N | " + " | ".join(title for _, title in columns) + " "
        "| other processes, cores (engine / naive / raw) |",
        "|---|---:|" + "---:|" * len(columns) + "---:|",
    ]
    for row in rows:
        cells = " | ".join(_figure(row.cpu.get(key, NAN), ",.0f") for key, _ in columns)
        others = " / ".join(_figure(row.others.get(phase, NAN), ".2f") for phase in phases)
        lines.append(f"| {row.database} | {row.size:,} | {cells} | {others} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Emails per second from due steps to a local SMTP sink: the engine, "
        "a naive pipeline and the raw SMTP limit (see docs/performance.md)."
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--sequence",
        choices=(SEQUENCE_ID, "bench-email-then-wait"),
        default=SEQUENCE_ID,
        help="the one-email sequence, or an email then a wait (each send then decides to"
        " wait, which the decision log records)",
    )
    parser.add_argument(
        "--databases", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"]
    )
    parser.add_argument(
        "--postgres-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where throwaway databases are created (default: %(default)s)",
    )
    parser.add_argument(
        "--phases",
        nargs="+",
        choices=("engine", "naive", "raw"),
        default=["engine", "naive", "raw"],
        help="what to measure (default: all three)",
    )
    parser.add_argument(
        "--naive-sample",
        type=int,
        default=2000,
        help="due rows the naive pipeline processes; 0 for all (default: %(default)s)",
    )
    parser.add_argument(
        "--raw-repeat", type=int, default=3, help="raw runs, best kept (default: %(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="engine worker processes, and raw connections (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="NURTURE_BATCH_SIZE")
    parser.add_argument(
        "--prototype",
        nargs="+",
        default=[],
        choices=("smtp-pipelining",),
        help="try a proposed engine change (bench/prototypes.py)",
    )
    parser.add_argument(
        "--sink",
        choices=("aiosmtpd", "fast"),
        default="aiosmtpd",
        help="the SMTP server the emails go to (default: %(default)s; see docs/performance.md)",
    )
    parser.add_argument(
        "--pin",
        choices=("none", "shared", "split"),
        default="none",
        help="CPU placement of benchmark and sink (default: %(default)s; see docs/performance.md)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds per phase (default: %(default)s)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=300,
        help="before each phase, wait up to this many seconds for other processes to leave "
        "the machine idle (default: %(default)s; 0 to not wait)",
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="time the dispatcher's stages (one worker)"
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="cProfile the engine into DIR (one worker)"
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or min(args.sizes) < 1:
        parser.error("--workers and --sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A stopped benchmark still drops its databases (the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    postgres_admin = args.postgres_admin if "postgres" in args.databases else None
    print("Delivery benchmark: due steps -> rendered -> delivered to a local SMTP sink\n")
    for name, value in machine(postgres_admin):
        print(f"- {name}: {value}")
    print(f"- command: python bench/delivery.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    if args.prototype:
        print(f"- prototypes: {', '.join(args.prototype)} (bench/prototypes.py)")
    batch_size = bench_settings("sqlite:///unused", f"smtp://{HOST}:25", args.batch_size).batch_size
    rows: list[Row] = []
    databases = Databases(args.postgres_admin)
    try:
        with SinkProcess(args.sink) as sink:
            placement = pin(args.pin, sink)
            print(f"- sink: {args.sink}, its own process on {HOST}; {placement}", flush=True)
            for kind in args.databases:
                for size in args.sizes:
                    rows.append(run_row(databases, kind, size, sink, args))
    finally:
        databases.close()
    print()
    print(table(rows, args, batch_size))
    print()
    print(cpu_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
