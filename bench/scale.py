"""Scale benchmark: the engine on PostgreSQL as the tables grow, and with more workers.

    python bench/scale.py --sizes 10000 100000 1000000 --workers 1 2 4 --hits 60000

One database grows to each size in turn (set-based SQL: `INSERT … SELECT FROM
generate_series`). At every size a tenth of the leads hold an active enrollment that is
not due (due days ahead) with one `sent` delivery of history, and 2,000 fresh
enrollments are due. Then, in one run:

1. claims: `Dispatcher._claim` timed over 10 batches of 200 at each size (ms per batch,
   rows read, CPU of the worker and of the server): flat, or not, as the tables grow;
2. sends: 20,000 due emails at the largest size, sent by 1, 2, 4 engine worker
   processes (bench/workers.py) to the aiosmtpd sink, each run on a fresh copy of the
   grown database and checked at the sink; next to each, the raw SMTP limit over as
   many connections;
3. hits: N waiting tracking hits (opens and clicks of the history's deliveries)
   processed by 1, 2, 4 processes each running `nurture.hits.process` until none is
   left, each run on a fresh copy.

Databases are created as `nurture_scale_<pid>_*` on `--postgres-admin`'s server and
dropped at the end. docs/performance.md ("Scale") explains the figures.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import statistics
import sys
import time
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any

import psycopg
from delivery import (
    BUSY,
    Autoanalyze,
    Databases,
    Meter,
    busy_cpu,
    expect,
    postgres_cpu,
    raw_workers,
    say,
    wait_for_quiet,
)
from machine import machine_facts
from scenario import NOW, SEQUENCE_ID, TEMPLATE, bench_settings
from smtp_sink import HOST, SinkProcess
from sqlalchemy import text
from workers import WorkerResult, engine_worker, hits_worker, together

from nurture.core.sequences import EmailStep
from nurture.db import upgrade
from nurture.dispatch import TickReport
from nurture.runtime import Runtime

NAN = float("nan")
SHARE = 10  # one lead in SHARE holds an active enrollment with a delivery of history
BATCH = 200
INTAKE = (1_600, 2_800)  # hits/s the tracking routes take on this machine (docs/performance.md)
SITE = "https://www.planifia.example"
LINKS = [f"{SITE}/fr/clients/moulages-berthier", f"{SITE}/fr/tarifs", f"{SITE}/fr/demo"]
SUBJECT = "Comment Moulages Berthier a repris la main sur son planning"
# Who fetches the pixel, in every ten opens: Apple's privacy proxy four times (a bare user
# agent from Apple's network: a machine open), Gmail's image proxy twice (unknown), mail
# clients four times (human).
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
OPEN_AGENTS = [
    *["Mozilla/5.0"] * 4,
    *[GMAIL_PROXY] * 2,
    "Mozilla/4.0 (compatible; ms-office; MSOffice 16) Microsoft Outlook 16.0.17531; Pro",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Mobile/15E148",
]
# Who follows the link, in every twenty clicks: browsers nineteen times, a mail security
# gateway once (a scanner).
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML,"
    " like Gecko) Version/17.4 Safari/605.1.15"
)
CLICK_AGENTS = [
    *[CHROME] * 8,
    *[SAFARI_IPHONE] * 5,
    *[FIREFOX] * 3,
    *[SAFARI_MAC] * 3,
    "Mozilla/5.0 (compatible; Proofpoint URL Defense)",
]


def _figure(value: float, form: str = ",.0f", suffix: str = "") -> str:
    return "–" if value != value else format(value, form) + suffix  # NaN: not measured


def _disturbed(others: float) -> str:
    return " †" if others >= BUSY else ""


# --- the databases --------------------------------------------------------------------


class ScaleDatabases(Databases):
    """Throwaway PostgreSQL databases `nurture_scale_<pid>_<name>`."""

    def _name(self, name: str) -> str:
        return f"nurture_scale_{os.getpid()}_{name}"


@dataclass(frozen=True)
class Shape:
    """What the sequence gives the seeded rows."""

    sequence: str
    version: str
    step: str
    priority: int
    template: str
    kind: str
    domain: str

    def params(self, **more: Any) -> dict[str, Any]:
        return {**self.__dict__, "now": NOW, "share": SHARE, **more}


def shape_of(url: str) -> Shape:
    """Store the sequence versions (as a tick does first) and read the rows' values."""
    runtime = Runtime(bench_settings(url, f"smtp://{HOST}:25"))
    sequence = runtime.content.get(SEQUENCE_ID)
    assert sequence is not None
    step = sequence.step(sequence.first_step)
    assert isinstance(step, EmailStep) and step.template == TEMPLATE
    with runtime.sessions.begin() as session:
        runtime.content.store_versions(session, NOW)
    domain = runtime.settings.message_id_domain
    runtime.close()
    return Shape(
        sequence.id, sequence.version, step.id, sequence.priority, step.template, step.kind, domain
    )


GROW_LEADS = """
INSERT INTO leads (email, first_name, company, country, timezone, locale, stage, score,
                   behaviour_points, cycle, tags, fields, created_at, updated_at)
SELECT 'lead' || n || '@load.example', 'Lead' || n, 'Company ' || n %% 997, 'FR',
       'Europe/Paris', CASE WHEN n %% 2 = 1 THEN 'fr' ELSE 'en' END, 'lead', 0, 0, 1,
       '[]', '{}', %(now)s - make_interval(days => 1 + n %% 365),
       %(now)s - make_interval(days => 1 + n %% 365)
FROM generate_series(%(first)s::int, %(last)s::int) AS n
"""
# Waiting after the step's email, sent three days ago: due again in 1 to 7 days.
GROW_ENROLLMENTS = """
INSERT INTO enrollments (lead_id, sequence_id, version, cycle, status, step_id,
                         step_started_at, due_at, priority, trigger, entered_at)
SELECT id, %(sequence)s, %(version)s, 1, 'active', %(step)s,
       %(now)s - interval '3 days' - make_interval(mins => id %% 1440),
       %(now)s + make_interval(days => 1 + id %% 6, mins => id %% 1440),
       %(priority)s, 'bench_started',
       %(now)s - interval '3 days' - make_interval(mins => id %% 1440 + 5)
FROM leads WHERE id > %(after)s AND id %% %(share)s::int = 0
"""
GROW_DELIVERIES = """
INSERT INTO deliveries (enrollment_id, lead_id, sequence_id, version, step_id, template,
                        kind, status, attempts, message_id, to_email, subject, locale,
                        links, created_at, updated_at, sent_at)
SELECT e.id, e.lead_id, e.sequence_id, e.version, e.step_id, %(template)s, %(kind)s,
       'sent', 1, 'history-' || e.id || '@' || %(domain)s, l.email, %(subject)s, l.locale,
       %(links)s, e.step_started_at, e.step_started_at, e.step_started_at
FROM enrollments e JOIN leads l ON l.id = e.lead_id
WHERE e.lead_id > %(after)s AND e.trigger = 'bench_started'
"""
# Due over the last ten minutes, for leads in no sequence yet (the newest first).
SEED_DUE = """
INSERT INTO enrollments (lead_id, sequence_id, version, cycle, status, step_id,
                         step_started_at, due_at, priority, trigger, entered_at)
SELECT id, %(sequence)s, %(version)s, 1, 'active', %(step)s,
       %(now)s - make_interval(secs => id %% 600), %(now)s - make_interval(secs => id %% 600),
       %(priority)s, 'seed', %(now)s - make_interval(secs => id %% 600)
FROM (SELECT id FROM leads l
      WHERE id %% %(share)s::int <> 0
        AND NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.lead_id = l.id)
      ORDER BY id DESC LIMIT %(count)s::int) AS free
"""


def vacuum(url: str, tables: str = "leads, enrollments, deliveries") -> None:
    """What autovacuum does after a bulk load (it is off on this server): statistics for
    the plans, and the visibility map."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"VACUUM (ANALYZE) {tables}".encode())


def grow(url: str, shape: Shape, leads: int) -> float:
    """Add leads up to `leads`, a tenth with their history; returns the seconds taken."""
    started = time.perf_counter()
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*), coalesce(max(id), 0) FROM leads").fetchone()
        assert row is not None
        have, after = row
        if leads > have:
            params = shape.params(first=have + 1, last=leads, after=after)
            params.update(subject=SUBJECT, links=psycopg.types.json.Jsonb(LINKS))
            for statement in (GROW_LEADS, GROW_ENROLLMENTS, GROW_DELIVERIES):
                connection.execute(statement.encode(), params)
    vacuum(url)
    return time.perf_counter() - started


def seed_due(url: str, shape: Shape, count: int) -> None:
    with psycopg.connect(url) as connection:
        done = connection.execute(SEED_DUE.encode(), shape.params(count=count)).rowcount
    expect(done == count, f"only {done} leads free for {count} due enrollments")
    vacuum(url, "enrollments")


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            """SELECT (SELECT count(*) FROM leads),
                      (SELECT count(*) FROM enrollments WHERE status = 'active'),
                      (SELECT count(*) FROM deliveries),
                      pg_database_size(current_database())"""
        ).fetchone()
    assert row is not None
    return dict(zip(("leads", "active", "deliveries", "bytes"), row, strict=True))


# --- 1. claims ------------------------------------------------------------------------


COUNTERS = """
SELECT relname || ' (scan)', seq_tup_read FROM pg_stat_user_tables
UNION ALL SELECT indexrelname, idx_tup_read FROM pg_stat_user_indexes
UNION ALL SELECT ' buffers', coalesce(sum(heap_blks_hit + heap_blks_read
                                        + coalesce(idx_blks_hit, 0) + coalesce(idx_blks_read, 0)
                                        + coalesce(toast_blks_hit, 0)
                                        + coalesce(toast_blks_read, 0)), 0)
          FROM pg_statio_user_tables
"""


def read_counters(url: str) -> dict[str, int]:
    """What the database's statements have read so far: rows by sequential scan of each
    table, entries of each index, and (" buffers") heap and index blocks touched."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        return {name: int(n) for name, n in connection.execute(COUNTERS)}


@dataclass
class ClaimRow:
    size: int
    grown: dict[str, int]
    grow_seconds: float
    batches: list[float] = field(default_factory=list)  # ms each
    rows_read: float = NAN  # per batch
    read_by: dict[str, float] = field(default_factory=dict)  # per batch, by table scan or index
    buffers: float = NAN  # per batch
    worker_cpu: float = NAN  # ms per batch
    server_cpu: float = NAN  # ms per batch
    others: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.batches) if self.batches else NAN

    @property
    def p90(self) -> float:
        if not self.batches:
            return NAN
        ordered = sorted(self.batches)
        return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


def measure_claims(url: str, size: int, args: argparse.Namespace) -> ClaimRow:
    """Batches of `Dispatcher._claim` on the due set, timed one by one."""
    runtime = Runtime(bench_settings(url, f"smtp://{HOST}:25", BATCH))
    dispatcher = runtime.dispatcher
    runtime.content  # noqa: B018 - sequence files are read before the clock starts
    with runtime.sessions() as session:  # the connection is open before the clock starts
        session.execute(text("SELECT 1"))
    database = url.rsplit("/", 1)[1]
    row = ClaimRow(size, {}, 0.0)
    wait_for_quiet(args.quiet_wait)
    meter = Meter(url)
    before = read_counters(url)
    server, cpu = postgres_cpu(database), time.process_time()
    for _ in range(args.batches):
        report = TickReport()
        started = time.perf_counter()
        jobs = dispatcher._claim(NOW, report)
        row.batches.append(1000 * (time.perf_counter() - started))
        expect(len(jobs) == BATCH, f"a claim took {len(jobs)} emails, not {BATCH} ({report})")
    cpu = time.process_time() - cpu
    server = postgres_cpu(database) - server
    meter.read_server()
    with runtime.engine.connect() as connection:  # the claims' backend: its counters now
        connection.execute(text("SELECT pg_stat_force_next_flush()"))
        connection.commit()
    time.sleep(1.2)  # other backends flush theirs within a second of going idle
    after = read_counters(url)
    row.others = meter.others(cpu)
    runtime.close()
    read = {name: (n - before.get(name, 0)) / args.batches for name, n in after.items()}
    row.buffers = read.pop(" buffers")
    row.read_by = {name: n for name, n in read.items() if n}
    row.rows_read = sum(row.read_by.values())
    row.worker_cpu = 1000 * cpu / args.batches
    row.server_cpu = 1000 * server / args.batches
    return row


def run_claims(databases: ScaleDatabases, shape: Shape, args: argparse.Namespace) -> list[ClaimRow]:
    url = databases.url("postgres", "grown")
    rows: list[ClaimRow] = []
    sizes = args.sizes if "claims" not in args.skip else args.sizes[-1:]
    for size in sizes:
        say(f"\n[claims {size:,}] growing to {size:,} leads")
        seconds = grow(url, shape, size)
        grown = counts(url)
        say(
            f"[claims {size:,}] grown in {seconds:.1f} s: {grown['active']:,} active enrollments, "
            f"{grown['deliveries']:,} deliveries, {grown['bytes'] / 2**20:,.0f} MiB"
        )
        if "claims" in args.skip:
            break
        seed_due(url, shape, args.due)
        row = measure_claims(url, size, args)
        row.grown, row.grow_seconds = grown, seconds
        rows.append(row)
        say(
            f"[claims {size:,}] {args.batches} batches: median {row.median:.1f} ms, "
            f"p90 {row.p90:.1f} ms, {row.rows_read:,.0f} rows read a batch"
            + (f" — other processes used {row.others:.1f} cores" if row.others >= BUSY else "")
        )
        with psycopg.connect(url) as connection:  # the next size starts without them
            connection.execute("DELETE FROM enrollments WHERE trigger = 'seed'")
    return rows


def claims_table(rows: list[ClaimRow], args: argparse.Namespace) -> str:
    head = "| | " + " | ".join(f"{r.size:,} leads" for r in rows) + " |"
    lines = [
        f"Claim: `Dispatcher._claim`, {args.batches} batches of {BATCH} "
        f"from {args.due:,} due enrollments, at each size:",
        "",
        head,
        "|---|" + "---:|" * len(rows),
    ]
    first = rows[0].median

    def line(title: str, cells: list[str]) -> None:
        lines.append(f"| {title} | " + " | ".join(cells) + " |")

    line("active enrollments, not due", [f"{r.grown['active']:,}" for r in rows])
    line("deliveries (sent)", [f"{r.grown['deliveries']:,}" for r in rows])
    line("database size, MiB", [f"{r.grown['bytes'] / 2**20:,.0f}" for r in rows])
    line("ms per batch, median", [f"{r.median:.1f}{_disturbed(r.others)}" for r in rows])
    line("ms per batch, p90", [f"{r.p90:.1f}" for r in rows])
    line("median against the smallest size", [f"{r.median / first:.2f}×" for r in rows])
    line("rows read per batch (tables and indexes)", [f"{r.rows_read:,.0f}" for r in rows])
    line("buffers touched per batch", [f"{r.buffers:,.0f}" for r in rows])
    line(
        "CPU ms per batch: worker / PostgreSQL",
        [f"{r.worker_cpu:.1f} / {r.server_cpu:.1f}" for r in rows],
    )
    line("other processes, cores", [f"{r.others:.2f}" for r in rows])
    if any(r.others >= BUSY for r in rows):
        lines.append(f"† other processes used ≥ {BUSY} cores during that measurement.")
    lines += ["", "Rows read per batch, by index or table scan:"]
    for r in rows:
        ranked = sorted(r.read_by.items(), key=lambda item: -item[1])
        lines.append(f"- {r.size:,}: " + ", ".join(f"{name} {n:,.0f}" for name, n in ranked))
    return "\n".join(lines)


# --- 2. sends -------------------------------------------------------------------------


@dataclass(frozen=True)
class SendRow:
    workers: int
    emails: int
    rate: float
    raw_rate: float
    shares: str
    cpu: float  # µs per email, the workers together
    server_cpu: float
    sink_cpu: float
    peaks: list[float]  # MiB, each worker
    others: float
    raw_others: float


def check_sends(url: str, emails: int, results: list[WorkerResult], sink: SinkProcess) -> None:
    """Each due email sent once, as the database and the sink both say."""
    arrivals = sink.snapshot()
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT status, message_id FROM deliveries WHERE message_id NOT LIKE 'history-%'"
        ).fetchall()
    sent = sum(r.sent for r in results)
    detail = "; ".join(r.detail for r in results)
    expect(sent == emails, f"the workers sent {sent} of {emails} ({detail})")
    expect(len(rows) == emails, f"{len(rows)} new deliveries, expected {emails}")
    expect(all(status == "sent" for status, _ in rows), "some new deliveries are not sent")
    expect(arrivals.messages == emails, f"sink got {arrivals.messages} messages, not {emails}")
    expect(arrivals.ids == {f"<{m}>" for _, m in rows}, "the sink's Message-IDs differ")


def run_sends(
    databases: ScaleDatabases, shape: Shape, sink: SinkProcess, args: argparse.Namespace
) -> list[SendRow]:
    say(f"\n[sends] a copy of the grown database with {args.emails:,} due emails")
    databases.create("postgres", "sends", copy_of="grown")
    seed_due(databases.url("postgres", "sends"), shape, args.emails)
    rows = []
    for workers in args.workers:
        url = databases.create("postgres", "send", copy_of="sends")
        meters: list[Meter] = []

        def start(url: str = url, meters: list[Meter] = meters) -> None:
            wait_for_quiet(args.quiet_wait)
            sink.reset()
            meters.append(Meter(url))

        deadline = time.monotonic() + args.timeout + args.quiet_wait
        arguments = [(url, sink.url, BATCH, deadline, [])] * workers
        with Autoanalyze(url):
            seconds, results = together(
                engine_worker,
                arguments,
                args.timeout + 60,
                start,
                lambda m=meters: m[0].read_server(),
            )
        meter = meters[0]
        cpu = sum(r.cpu for r in results)
        sink_cpu = sink.snapshot().cpu_seconds
        others = meter.others(cpu + sink_cpu)
        check_sends(url, args.emails, results, sink)
        databases.drop("postgres", "send")
        say(f"[sends {workers}] engine: {args.emails / seconds:,.0f} emails/s")

        raw_meters: list[Meter] = []

        def raw_start(meters: list[Meter] = raw_meters) -> None:
            wait_for_quiet(args.quiet_wait)
            sink.reset()
            meters.append(Meter("sqlite:///none"))

        raw_args = Namespace(workers=workers, prototype=[], timeout=args.timeout)
        raw_seconds, ids, raw_cpu, _ = raw_workers(args.emails, sink, raw_args, raw_start)
        arrivals = sink.snapshot()
        expect(arrivals.messages == args.emails, f"raw: sink got {arrivals.messages}")
        expect(arrivals.ids == ids, "raw: the sink's Message-IDs differ")
        raw_others = raw_meters[0].others(raw_cpu + arrivals.cpu_seconds)
        say(f"[sends {workers}] raw: {args.emails / raw_seconds:,.0f} emails/s")
        per = 1e6 / args.emails
        rows.append(
            SendRow(
                workers,
                args.emails,
                args.emails / seconds,
                args.emails / raw_seconds,
                "/".join(f"{r.sent:,}" for r in results),
                cpu * per,
                meter.server_seconds * per,
                sink_cpu * per,
                [r.peak_mib for r in results],
                others,
                raw_others,
            )
        )
    databases.drop("postgres", "sends")
    return rows


def sends_table(rows: list[SendRow], size: int) -> str:
    lines = [
        f"Sends: {rows[0].emails:,} due emails at {size:,} leads, engine workers (one process "
        "and one SMTP connection each) against the raw SMTP limit over as many connections, "
        "aiosmtpd sink:",
        "",
        "| workers | engine emails/s | raw emails/s | engine/raw | sent by each "
        "| CPU µs/email: workers / PostgreSQL / sink | peak MiB per worker "
        "| other processes, cores (engine / raw) |",
        "|---:|---:|---:|---:|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.workers} | {r.rate:,.0f}{_disturbed(r.others)} "
            f"| {r.raw_rate:,.0f}{_disturbed(r.raw_others)} | {100 * r.rate / r.raw_rate:.0f} % "
            f"| {r.shares} | {r.cpu:,.0f} / {r.server_cpu:,.0f} / {r.sink_cpu:,.0f} "
            f"| {', '.join(f'{p:,.0f}' for p in r.peaks)} "
            f"| {r.others:.2f} / {r.raw_others:.2f} |"
        )
    if any(max(r.others, r.raw_others) >= BUSY for r in rows):
        lines.append(f"† other processes used ≥ {BUSY} cores during that measurement.")
    return "\n".join(lines)


# --- 3. tracking hits -----------------------------------------------------------------

# Each pair is one reader: the pixel fetched in the quarter of an hour before `now`
# (spread evenly), the first link followed 20 s to 5 min later. Rows are stored in the
# order they arrive, as the spool writes them.
SEED_HITS = """
WITH d AS (
    SELECT id, lead_id, row_number() OVER (ORDER BY id) - 1 AS r
    FROM deliveries WHERE status = 'sent'
), pairs AS (
    SELECT g, %(now)s - interval '15 minutes'
              + make_interval(secs => g * 600.0 / %(pairs)s::int) AS opened,
           ((g * 37) %% 200 + 23) || '.' || (g * 91) %% 256 || '.' || (g * 13) %% 256 || '.'
              || g %% 254 + 1 AS ip
    FROM generate_series(0, %(pairs)s::int - 1) AS g
)
INSERT INTO tracking_hits (delivery_id, lead_id, kind, link, url, method, ip, user_agent,
                           reasons, at)
SELECT d.id, d.lead_id, h.kind, h.link, h.url, 'GET', h.ip, h.agent, '[]', h.at
FROM pairs p
JOIN d ON d.r = (p.g * %(deliveries)s::bigint) / %(pairs)s::int
CROSS JOIN LATERAL (VALUES
    ('open', NULL::int, NULL::text, p.opened,
     (%(open_agents)s::text[])[1 + p.g %% 10],
     CASE WHEN p.g %% 10 < 4 THEN '17.58.' || p.g %% 256 || '.' || (p.g * 7) %% 256 ELSE p.ip END),
    ('click', 0, %(url)s, p.opened + make_interval(secs => 20 + (p.g * 7919) %% 280),
     (%(click_agents)s::text[])[1 + p.g %% 20], p.ip)
) AS h(kind, link, url, at, agent, ip)
ORDER BY h.at
"""


def seed_hits(url: str, hits: int) -> int:
    pairs = hits // 2
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM deliveries WHERE status = 'sent'").fetchone()
        assert row is not None and row[0] > 0
        params = {
            "now": NOW,
            "pairs": pairs,
            "deliveries": row[0],
            "open_agents": OPEN_AGENTS,
            "click_agents": CLICK_AGENTS,
            "url": LINKS[0],
        }
        done = connection.execute(SEED_HITS.encode(), params).rowcount
    vacuum(url, "tracking_hits")
    return done


ROLLED_BACK = re.compile(r"(\d+) batches rolled back")
FIRST = re.compile(r"\(the first: (.*)\)$")


class HitsAnalyze(Autoanalyze):
    """Autoanalyze, for the tables processing writes."""

    TABLES = "leads, tracking_hits, events, score_changes, stage_changes"


@dataclass(frozen=True)
class HitsRow:
    workers: int
    hits: int
    rate: float
    shares: str
    cpu: float  # µs per hit, the workers together
    server_cpu: float
    peaks: list[float]
    rolled_back: list[int]  # batches, each worker
    first_rollback: str
    labels: str
    others: float


def check_hits(url: str, hits: int, results: list[WorkerResult]) -> str:
    """Every hit an event with a label, none waiting or set aside; returns the labels."""
    with psycopg.connect(url) as connection:
        waiting, failed, events = connection.execute(
            """SELECT count(*) FILTER (WHERE processed_at IS NULL),
                      count(*) FILTER (WHERE error IS NOT NULL),
                      (SELECT count(*) FROM events
                       WHERE name IN ('email_opened', 'email_clicked'))
               FROM tracking_hits"""
        ).fetchone() or (0, 0, 0)
        labels = connection.execute(
            "SELECT kind, classification, count(*) FROM tracking_hits GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    done = sum(r.sent for r in results)
    details = "; ".join(r.detail for r in results)
    expect(done == hits, f"the workers processed {done} of {hits} hits ({details})")
    expect(waiting == 0 and failed == 0, f"{waiting} hits left waiting, {failed} set aside")
    expect(events == hits, f"{events} events for {hits} hits")
    return ", ".join(f"{kind} {label} {n:,}" for kind, label, n in labels)


def run_hits(databases: ScaleDatabases, args: argparse.Namespace) -> list[HitsRow]:
    say(f"\n[hits] a copy of the grown database with {args.hits:,} waiting tracking hits")
    databases.create("postgres", "hits", copy_of="grown")
    hits = seed_hits(databases.url("postgres", "hits"), args.hits)
    rows = []
    for workers in args.workers:
        url = databases.create("postgres", "track", copy_of="hits")
        meters: list[Meter] = []

        def start(url: str = url, meters: list[Meter] = meters) -> None:
            wait_for_quiet(args.quiet_wait)
            meters.append(Meter(url))

        deadline = time.monotonic() + args.timeout + args.quiet_wait
        with HitsAnalyze(url):
            seconds, results = together(
                hits_worker,
                [(url, deadline)] * workers,
                args.timeout + 60,
                start,
                lambda m=meters: m[0].read_server(),
            )
        meter = meters[0]
        cpu = sum(r.cpu for r in results)
        labels = check_hits(url, hits, results)
        databases.drop("postgres", "track")
        rolled_back = [int(ROLLED_BACK.search(r.detail).group(1)) for r in results]  # type: ignore[union-attr]
        firsts = [found.group(1) for r in results if (found := FIRST.search(r.detail))]
        rows.append(
            HitsRow(
                workers,
                hits,
                hits / seconds,
                "/".join(f"{r.sent:,}" for r in results),
                1e6 * cpu / hits,
                1e6 * meter.server_seconds / hits,
                [r.peak_mib for r in results],
                rolled_back,
                firsts[0] if firsts else "",
                labels,
                meter.others(cpu),
            )
        )
        details = "; ".join(r.detail for r in results)
        say(f"[hits {workers}] {hits / seconds:,.0f} hits/s ({details})")
    databases.drop("postgres", "hits")
    return rows


def hits_table(rows: list[HitsRow], size: int) -> str:
    one = rows[0].rate if rows[0].workers == 1 else NAN
    lines = [
        f"Tracking hits: {rows[0].hits:,} waiting (half opens, half clicks) at {size:,} leads, "
        "processed by K processes running `nurture.hits.process` until none is left:",
        "",
        "| workers | hits/s | against 1 worker | processed by each | batches rolled back "
        "| CPU µs/hit: workers / PostgreSQL | peak MiB per worker "
        f"| share of the routes' {INTAKE[0]:,}–{INTAKE[1]:,} hits/s | other processes, cores |",
        "|---:|---:|---:|---|---|---|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.workers} | {r.rate:,.0f}{_disturbed(r.others)} "
            f"| {_figure(r.rate / one, '.2f', '×')} "
            f"| {r.shares} | {'/'.join(map(str, r.rolled_back))} "
            f"| {r.cpu:,.0f} / {r.server_cpu:,.0f} "
            f"| {', '.join(f'{p:,.0f}' for p in r.peaks)} "
            f"| {100 * r.rate / INTAKE[1]:.0f}–{100 * r.rate / INTAKE[0]:.0f} % | {r.others:.2f} |"
        )
    lines += ["", f"Labels: {rows[-1].labels}."]
    for r in rows:
        if r.first_rollback:
            lines.append(f"Rolled back with {r.workers} workers, the first: {r.first_rollback}.")
    best = max(rows, key=lambda r: r.rate)
    workers = f"{best.workers} worker{'s' if best.workers > 1 else ''}"
    if best.rate >= INTAKE[1]:
        keeps = min(r.workers for r in rows if r.rate >= INTAKE[1])
        lines.append(f"{keeps} worker(s) keep up with the routes' peak ({INTAKE[1]:,} hits/s).")
    elif best.rate >= INTAKE[0]:
        lines.append(f"{workers} keep up with {INTAKE[0]:,} hits/s, not with {INTAKE[1]:,}.")
    else:
        lines.append(
            f"No number of workers keeps up with the routes on this machine: at best "
            f"{best.rate:,.0f} hits/s ({workers}), {100 * best.rate / INTAKE[0]:.0f} % of the "
            f"routes' lower figure. One minute of hits at {INTAKE[1]:,}/s takes "
            f"{INTAKE[1] / best.rate:.1f} minutes to process."
        )
    if rows[0].workers == 1:
        cost = rows[0].cpu + rows[0].server_cpu  # µs of CPU per hit, worker and server
        low, high = (rate * cost / 1e6 for rate in INTAKE)
        lines.append(
            f"At one worker's CPU per hit ({rows[0].cpu:,.0f} µs, and {rows[0].server_cpu:,.0f} "
            f"µs of PostgreSQL), keeping up takes {low:.1f}–{high:.1f} cores of CPU, "
            "workers and server together, if nothing else held them back."
        )
    if any(r.others >= BUSY for r in rows):
        lines.append(f"† other processes used ≥ {BUSY} cores during that measurement.")
    return "\n".join(lines)


# --- the command ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="The engine on PostgreSQL as tables grow and with more workers: claim "
        "time per batch, sends per second, tracking hits per second (see docs/performance.md)."
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 1_000_000],
        help="leads the database grows to, in turn (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2, 4],
        help="worker processes for sends and hits (default: %(default)s)",
    )
    parser.add_argument(
        "--hits", type=int, default=60_000, help="waiting tracking hits (default: %(default)s)"
    )
    parser.add_argument(
        "--emails",
        type=int,
        default=20_000,
        help="due emails of each sends run (default: %(default)s)",
    )
    parser.add_argument(
        "--due", type=int, default=2_000, help="due enrollments at each size (default: %(default)s)"
    )
    parser.add_argument(
        "--batches", type=int, default=10, help="claims timed at each size (default: %(default)s)"
    )
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        choices=("claims", "sends", "hits"),
        help="parts not to measure (the database still grows to the largest size)",
    )
    parser.add_argument(
        "--postgres-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where throwaway databases are created (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds per run (default: %(default)s)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=300,
        help="before each measure, wait up to this many seconds for other processes to leave "
        "the machine idle (default: %(default)s; 0 to not wait)",
    )
    args = parser.parse_args(argv)
    args.sizes = sorted(set(args.sizes))
    if min(args.sizes) < 1 or min(args.workers) < 1 or args.hits < 2 or args.emails < 1:
        parser.error("--sizes, --workers, --hits and --emails must be positive")
    if args.due < args.batches * BATCH:
        parser.error(f"--due must cover --batches × {BATCH}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still drops its databases
    print("Scale benchmark: the engine on PostgreSQL as tables grow and with more workers\n")
    packages = ("SQLAlchemy", "psycopg", "Jinja2", "aiosmtpd")
    for name, value in machine_facts(args.postgres_admin, packages):
        print(f"- {name}: {value}")
    print(f"- command: python bench/scale.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(
        f"- now: {NOW.isoformat()} (the scenario's moment); autovacuum's work is done by the "
        "benchmark (VACUUM ANALYZE after each load, ANALYZE every 60 s during runs)",
        flush=True,
    )
    started, busy = time.monotonic(), busy_cpu()
    databases = ScaleDatabases(args.postgres_admin)
    claims: list[ClaimRow] = []
    sends: list[SendRow] = []
    hits: list[HitsRow] = []
    try:
        url = databases.create("postgres", "grown")
        upgrade(url)
        shape = shape_of(url)
        claims = run_claims(databases, shape, args)
        if "sends" not in args.skip:
            with SinkProcess("aiosmtpd") as sink:
                sends = run_sends(databases, shape, sink, args)
        if "hits" not in args.skip:
            hits = run_hits(databases, args)
    finally:
        databases.close()
    wall = time.monotonic() - started
    print(
        f"- whole run: {wall / 60:.1f} min, the machine {(busy_cpu() - busy) / wall:.2f} cores "
        "busy on average (everything, this benchmark included)\n"
    )
    for part in (
        claims and claims_table(claims, args),
        sends and sends_table(sends, args.sizes[-1]),
        hits and hits_table(hits, args.sizes[-1]),
    ):
        if part:
            print(part, end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
