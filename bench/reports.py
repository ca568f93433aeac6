"""Reports benchmark: every report over a year and over a month of a million leads.

    python bench/reports.py            # --seed-leads 1000 --months 12 --leads 1000000

1. seed: `nurture demo`'s population (nurture/demo.py) on a throwaway PostgreSQL
   database: leads arriving through the API and forms over `--months` (everyone made
   keener by `--warmth`, so that about a fifth reach sales), the engine
   ticking under a moving clock, opens and clicks through the tracking routes, CRM
   answers; its run time is printed;
2. grow: that history copied set-based to `--leads` leads (bench/reports_growth.py);
3. summary: the reports' daily summary made as the worker makes it, every day once
   (its daily pass) and the last 7 days (its hourly pass), each timed;
4. reports: each report with each grouping (and view, and attribution model) for the
   last 12 months and for the last whole month, `--repeat` times each through
   `nurture.reports.build`, the same call the CLI and the API make (the funnel and the
   sources report read the summary; `--live` counts them from the history instead);
   next to them the floor measured in the same run: counting the leads and events of
   the range;
5. write path: the cost of the report indexes, as the intake path (`take_many`, a
   batch of `--write-batch` new leads) and the event insert with and without them.

The database is `nurture_reports_<pid>` on `--postgres-admin`'s server, dropped at the
end unless `--keep`. docs/performance.md ("Reports") explains the figures.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from machine import machine_facts
from reports_growth import grow
from sqlalchemy import Engine, create_engine, select, text

from nurture.config import load_settings
from nurture.core.intake import parse_lead
from nurture.core.reports import GROUPINGS, parse_request
from nurture.db import upgrade
from nurture.reports import build
from nurture.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-0123456789abcdef"
# The indexes added for reports (migrations 0010, 0012, 0015 and 0016), by name.
REPORT_INDEXES = (
    "ix_leads_created_at",
    "ix_events_name_time",
    "ix_deliveries_sent_at",
    "ix_stage_changes_to_stage_at",
    "ix_promotions_created_at",
    "ix_sales_feedback_promotion",
    "ix_enrollments_entered_at",
    "ix_enrollments_left_at",
    "ix_stage_changes_at",
    "ix_promotions_accepted_at",
    "ix_promotions_opportunity_at",
    "ix_promotions_won_at",
)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def settings_for(url: str, outbox: Path) -> object:
    return load_settings(
        environ={},
        overrides={
            "database_url": url,
            "secret_key": SECRET,
            "sequences_dir": ROOT / "sequences",
            # The shipped rules, as `nurture demo` runs with them: scoring promotes.
            "scoring_file": ROOT / "sequences" / "rules" / "scoring.yaml",
            "routing_file": ROOT / "sequences" / "rules" / "routing.yaml",
            "qualification_file": ROOT / "sequences" / "rules" / "qualification.yaml",
            "templates_dir": ROOT / "templates",
            "base_url": "https://nurture.example.com",
            "outbox_dir": outbox,
        },
    )


# --- 1 and 2: the history -------------------------------------------------------------


def seed(runtime: Runtime, leads: int, months: int, end: datetime, warmth: float) -> float:
    from nurture.demo import populate

    started = time.perf_counter()
    summary = populate(
        runtime, leads=leads, months=months, end=end, seed=1, progress=say, warmth=warmth
    )
    say(f"seed: {summary}")
    return time.perf_counter() - started


COUNTED = ("leads", "events", "promotions", "sales_feedback", "deliveries", "tracking_hits",
           "stage_changes", "enrollments")  # fmt: skip


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            name: int(connection.scalar(text(f"SELECT count(*) FROM {name}")) or 0)
            for name in COUNTED
        }


# --- 3: the reports --------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    label: str
    span: str
    first: float
    median: float
    rows: int


def requests() -> list[tuple[str, str | None, str | None, str | None]]:
    """(name, by, view, attribution) of every report as the CLI can ask for it."""
    found: list[tuple[str, str | None, str | None, str | None]] = []
    for name, groupings in GROUPINGS.items():
        for by in groupings:
            if name == "funnel":
                found += [(name, by, view, None) for view in ("cohort", "period")]
            elif name == "sources":
                found += [(name, by, None, model) for model in ("first", "last")]
            else:
                found.append((name, by if name not in ("sequences", "deliverability") else None,
                              None, None))  # fmt: skip
    return found


def spans(end: date) -> dict[str, tuple[date, date]]:
    last_month_end = end.replace(day=1) - timedelta(days=1)
    return {
        "12 months": (end - timedelta(days=364), end),
        "month": (last_month_end.replace(day=1), last_month_end),
    }


def summarise(runtime: Runtime, end: datetime) -> dict[str, float]:
    """The worker's two passes over the reports' daily summary, timed."""
    from nurture.reports.summary import RECENT_DAYS, summarize

    found = {}
    for label, days in (("every day", None), (f"the last {RECENT_DAYS} days", RECENT_DAYS)):
        started = time.perf_counter()
        with runtime.sessions.begin() as session:
            done = summarize(session, end, days, runtime.settings)
        found[label] = time.perf_counter() - started
        say(f"  summary, {label}: {done} in {found[label]:.1f} s")
    return found


def time_reports(
    runtime: Runtime, end: datetime, repeat: int, live: bool, only: set[str] | None
) -> list[Timed]:
    from nurture.reports.output import rep_zones, step_order

    settings = runtime.settings
    zones = rep_zones(settings.routing_file)
    order = step_order(settings.sequences_dir)
    found = []
    for span, (first, last) in spans(end.date()).items():
        for name, by, view, model in requests():
            if only and name not in only:
                continue
            request = parse_request(name, first.isoformat(), last.isoformat(), by, None, view,
                                    model, live)  # fmt: skip
            label = " ".join(x for x in (name, by and f"--by {by}", view, model) if x)
            seconds = []
            rows = 0
            for _ in range(repeat):
                with runtime.sessions() as session:
                    started = time.perf_counter()
                    table = build(session, request, settings, end, zones, order)
                    seconds.append(time.perf_counter() - started)
                rows = len(table.rows)
            found.append(Timed(label, span, seconds[0], statistics.median(seconds), rows))
            say(f"  {span:>9}  {label:<40} {statistics.median(seconds) * 1000:8.0f} ms")
    return found


def floors(engine: Engine, end: datetime) -> dict[str, float]:
    """The same run's floor: counting the range's leads and events (index scans)."""
    found = {}
    with engine.connect() as connection:
        for span, (first, last) in spans(end.date()).items():
            started = time.perf_counter()
            for table, column in (("leads", "created_at"), ("events", "occurred_at")):
                connection.execute(
                    text(f"SELECT count(*) FROM {table} WHERE {column} >= :a AND {column} < :b"),
                    {"a": first, "b": last + timedelta(days=1)},
                ).scalar()
            found[span] = time.perf_counter() - started
    return found


# --- 4: the write path -------------------------------------------------------------------


def write_path(runtime: Runtime, end: datetime, batch: int, rounds: int) -> dict[str, float]:
    """Leads/s through the intake path and events/s inserted, with the report indexes
    and without them (dropped, measured, created again)."""
    from nurture.intake import take_many

    def intake(tag: str) -> float:
        rates = []
        for round_ in range(rounds):
            items = [
                parse_lead(
                    {
                        "email": f"w{tag}{round_}-{n}@write.example",
                        "country": "FR",
                        "company": f"Write {n % 50}",
                        "source": "bench",
                    }
                )
                for n in range(batch)
            ]
            started = time.perf_counter()
            with runtime.sessions.begin() as session:
                take_many(session, runtime.content, runtime.settings, items, end, "api")
            rates.append(batch / (time.perf_counter() - started))
        return statistics.median(rates)

    def events(tag: str) -> float:
        """Events as the API records them (evidence.record: enrols, scores, wakes)."""
        from nurture.evidence import record
        from nurture.models import Lead

        rates = []
        for _ in range(rounds):
            with runtime.sessions.begin() as session:
                leads = session.scalars(select(Lead).order_by(Lead.id).limit(batch)).all()
                started = time.perf_counter()
                for lead in leads:
                    record(session, runtime.content, runtime.settings, lead, "page_viewed",
                           {"url": f"https://example.com/{tag}"}, end)  # fmt: skip
            rates.append(len(leads) / (time.perf_counter() - started))
        return statistics.median(rates)

    def set_indexes(present: bool) -> None:
        """Drop or create them as the models define them (the migrations' definitions)."""
        from nurture.models import Base

        indexes = {i.name: i for t in Base.metadata.tables.values() for i in t.indexes}
        with runtime.engine.begin() as connection:
            for name in REPORT_INDEXES:
                if present:
                    indexes[name].create(connection)
                else:
                    indexes[name].drop(connection)

    intake("warm")  # the first batch loads the sequences and plans the statements
    found = {"intake with": intake("a"), "events with": events("a")}
    set_indexes(False)
    try:
        found["intake without"] = intake("b")
        found["events without"] = events("b")
    finally:
        set_indexes(True)
    return found


# --- the command ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--postgres-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seed-leads", type=int, default=1000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument(
        "--warmth",
        type=float,
        default=0.5,
        help="added to every demo person's interest: 0.5 hands about a fifth to sales",
    )
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-batch", type=int, default=500)
    parser.add_argument("--write-rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--reuse", metavar="URL", help="skip 1 and 2: time this grown database")
    parser.add_argument("--live", action="store_true", help="no summary: every report counted live")
    parser.add_argument("--reports", metavar="NAMES", help="only these reports (comma-separated)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    end = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a fixed end: the same history each run
    name = f"nurture_reports_{os.getpid()}"
    admin = args.postgres_admin
    url = args.reuse or f"{admin.rsplit('/', 1)[0]}/{name}"
    outbox = Path(tempfile.mkdtemp(prefix="nurture-reports-"))
    if not args.reuse:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    upgrade(url)  # a kept database too: it may predate the latest migration
    runtime = Runtime(settings_for(url, outbox))  # type: ignore[arg-type]
    engine = create_engine(runtime.settings.database_url)
    try:
        facts = machine_facts(admin, ("SQLAlchemy", "psycopg"))
        seeded = grown_in = 0.0
        if not args.reuse:
            say(f"seed: {args.seed_leads} leads over {args.months} months through the engine")
            seeded = seed(runtime, args.seed_leads, args.months, end, args.warmth)
            before = counts(engine)
            copies = max(0, math.ceil(args.leads / max(before["leads"], 1)) - 1)
            say(f"grow: {copies} copies of the seed's history")
            started = time.perf_counter()
            grow(engine, copies)
            grown_in = time.perf_counter() - started
        sizes = counts(engine)
        summarised: dict[str, float] = {}
        if not args.live:
            say("summary:")
            summarised = summarise(runtime, end)
        say("reports:")
        only = set(args.reports.split(",")) if args.reports else None
        timed = time_reports(runtime, end, args.repeat, args.live, only)
        floor = floors(engine, end)
        say("write path:")
        writes = write_path(runtime, end, args.write_batch, args.write_rounds)
        print(report(facts, sizes, seeded, grown_in, summarised, timed, floor, writes, args))
    finally:
        runtime.close()
        engine.dispose()
        if not args.keep and not args.reuse:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        elif args.keep:
            say(f"kept: {url}")
    return 0


def report(
    facts: list[tuple[str, str]],
    sizes: dict[str, int],
    seeded: float,
    grown_in: float,
    summarised: dict[str, float],
    timed: list[Timed],
    floor: dict[str, float],
    writes: dict[str, float],
    args: argparse.Namespace,
) -> str:
    lines = [f"{k}: {v}" for k, v in facts]
    lines.append("")
    lines.append("database: " + ", ".join(f"{n} {c:,}" for n, c in sizes.items()))
    if seeded:
        lines.append(f"seed through the engine: {args.seed_leads:,} leads in {seeded:.0f} s; "
                     f"grown set-based in {grown_in:.0f} s")  # fmt: skip
    for label, seconds in summarised.items():
        lines.append(f"reports' daily summary, {label}: {seconds:.1f} s")
    lines.append("")
    lines.append("| report | 12 months (ms) | month (ms) | rows (12 months) |")
    lines.append("|---|---:|---:|---:|")
    by_label: dict[str, dict[str, Timed]] = {}
    for t in timed:
        by_label.setdefault(t.label, {})[t.span] = t
    for label, spans_ in by_label.items():
        year, month = spans_["12 months"], spans_["month"]
        lines.append(f"| {label} | {year.median * 1000:,.0f} | {month.median * 1000:,.0f} | "
                     f"{year.rows} |")  # fmt: skip
    worst_year = max(t.median for t in timed if t.span == "12 months")
    worst_month = max(t.median for t in timed if t.span == "month")
    lines.append(f"| floor: count the range's leads and events | {floor['12 months'] * 1000:,.0f} "
                 f"| {floor['month'] * 1000:,.0f} | |")  # fmt: skip
    lines.append("")
    lines.append(f"slowest: {worst_year * 1000:,.0f} ms for 12 months (target 2,000), "
                 f"{worst_month * 1000:,.0f} ms for a month (target 200); "
                 f"median of {args.repeat} runs")  # fmt: skip
    lines.append("")
    lines.append(
        f"write path, report indexes present / dropped: intake {writes['intake with']:,.0f} / "
        f"{writes['intake without']:,.0f} leads/s (batches of {args.write_batch}); API events "
        f"{writes['events with']:,.0f} / {writes['events without']:,.0f} events/s"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
