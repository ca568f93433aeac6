"""Broadcasts benchmark: start one occurrence for a million leads on PostgreSQL.

    python bench/broadcasts.py            # --leads 1000000

1. generate: `--leads` leads (set-based: INSERT … SELECT generate_series) in four time
   zones (one in four with no zone, found by its country), four in five tagged
   `newsletter`, a third at stage mql, one in fifty unsubscribed;
2. baseline: a raw INSERT … SELECT of the same rows into enrollments (the segment and
   suppression conditions written by hand, everyone due now, no record of the
   occurrence), rolled back;
3. dry run: `nurture.broadcasts.dry_run`, the count by reason;
4. start: `nurture.broadcasts.start`, as the worker's job runs it: the occurrence
   recorded, each lead recorded once for it, each enrolled due at 09:00 in its own
   zone; then the same start again (nothing to do);
5. send: `--batches` dispatcher batches of the broadcast's emails into a memory mailer,
   with 800,000 of them due; then, as the baseline of this step, as many batches of an
   ordinary one-email sequence (the same template) enrolled for other leads: the
   dispatcher is the same, so the two rates should match.

The database is `nurture_broadcasts_<pid>` on `--postgres-admin`'s server, dropped at
the end unless `--keep`; or `--database URL`, an empty database used as it is (left
filled). docs/performance.md ("Broadcasts") records the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from machine import machine_facts
from sqlalchemy import text

from nurture.broadcasts import broadcasts_of, dry_run, start
from nurture.config import load_settings
from nurture.db import upgrade
from nurture.mail import MemoryMailer
from nurture.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-0123456789abcdef"
NOW = datetime(2026, 12, 9, 20, 0, tzinfo=UTC)  # 09:00 on the 10th has begun in UTC+14
WALL = datetime(2026, 12, 10, 9, 0)  # noqa: DTZ001 -- a wall time, read in each zone

NEWSLETTER = """\
id: december
name: December newsletter
priority: 10
segment:
  stage: [lead, mql]
  tags: newsletter
send: {at: "2026-12-10 09:00"}
email: {template: example, kind: newsletter}
"""

LEADS = """
INSERT INTO leads (public_id, email, country, timezone, stage, score, tags, fields,
                   created_at, updated_at, unsubscribed_at)
SELECT 'bench' || g, 'lead' || g || '@example.com',
       (ARRAY['FR', 'US', 'JP', 'DE'])[1 + g % 4],
       (ARRAY['Europe/Paris', 'America/New_York', 'Asia/Tokyo', NULL])[1 + g % 4],
       CASE WHEN g % 3 = 0 THEN 'mql' ELSE 'lead' END, 0,
       CASE WHEN g % 5 = 0 THEN '["partner"]'::jsonb ELSE '["newsletter"]'::jsonb END,
       '{}'::jsonb, :now - make_interval(days => 100 + g % 900), :now,
       CASE WHEN g % 50 = 0 THEN :now - interval '30 days' END
FROM generate_series(1, :leads) AS g
"""
NEWS = """\
id: news
name: News
priority: 20
entry:
  triggers:
    - event: {name: news}
steps:
  - id: update
    email: {template: example, kind: product_update}
"""

BASELINE = """
INSERT INTO enrollments (lead_id, sequence_id, version, cycle, status, step_id,
                         step_started_at, due_at, priority, trigger, entered_at)
SELECT id, 'baseline', 'v', 1, 'active', 'email', :now, :now, 10, 'broadcast', :now
FROM leads
WHERE tags ? 'newsletter' AND stage IN ('lead', 'mql') AND unsubscribed_at IS NULL
  AND bounced_at IS NULL AND sunset_at IS NULL
"""
# The sequence baseline of the send step: leads the broadcast left out (partners),
# enrolled due now in an ordinary sequence, claimed first (higher priority).
SEQUENCE_ENROLMENT = """
INSERT INTO enrollments (lead_id, sequence_id, version, cycle, status, step_id,
                         step_started_at, due_at, priority, trigger, entered_at)
SELECT id, 'news', :version, 1, 'active', 'update', :now, :now, 20, 'bench', :now
FROM leads WHERE tags ? 'partner' AND unsubscribed_at IS NULL ORDER BY id LIMIT :count
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--postgres-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", help="an empty database to use instead of a new one")
    parser.add_argument("--batches", type=int, default=10, help="dispatcher batches to send")
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    admin = args.postgres_admin
    name = f"nurture_broadcasts_{os.getpid()}"
    url = args.database or f"{admin.rsplit('/', 1)[0]}/{name}"
    work = Path(tempfile.mkdtemp(prefix="nurture-broadcasts-"))
    if args.database is None:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    runtime: Runtime | None = None
    try:
        upgrade(url)
        (work / "sequences" / "broadcasts").mkdir(parents=True)
        (work / "sequences" / "broadcasts" / "december.yaml").write_text(NEWSLETTER)
        (work / "sequences" / "news.yaml").write_text(NEWS)
        shutil.copytree(ROOT / "templates" / "layouts", work / "templates" / "layouts")
        example = work / "templates" / "emails" / "example"
        shutil.copytree(ROOT / "templates" / "emails" / "_example", example)
        settings = load_settings(
            environ={},
            overrides={
                "database_url": url,
                "secret_key": SECRET,
                "sequences_dir": work / "sequences",
                "templates_dir": work / "templates",
                "outbox_dir": work / "outbox",
                "spool_dir": work / "spool",
                "journal_dir": work / "journal",
            },
        )
        mailer = MemoryMailer()
        runtime = Runtime(settings, lambda: mailer)
        facts = machine_facts(url, ("SQLAlchemy", "psycopg"))
        broadcast = broadcasts_of(settings, runtime.content).broadcasts["december"]

        say(f"generate: {args.leads} leads")
        started = time.perf_counter()
        with runtime.sessions.begin() as session:
            session.execute(text(LEADS), {"now": NOW, "leads": args.leads})
        with runtime.engine.connect() as connection:
            connection.execute(text("COMMIT"))
            connection.execute(text("ANALYZE"))
        generated = time.perf_counter() - started

        say("baseline: a raw INSERT … SELECT of the same rows, rolled back")
        with runtime.sessions() as session:
            started = time.perf_counter()
            raw = session.execute(text(BASELINE), {"now": NOW}).rowcount
            baseline = time.perf_counter() - started
            session.rollback()

        say("dry run")
        with runtime.sessions() as session:
            started = time.perf_counter()
            count = dry_run(session, broadcast, WALL, NOW, settings)
            counting = time.perf_counter() - started

        say("start: select and enrol, twice")
        runs = []
        for _ in range(2):
            started = time.perf_counter()
            with runtime.sessions.begin() as session:
                done = start(session, broadcast, WALL, NOW)
            runs.append((time.perf_counter() - started, done.recipients if done else 0))
        with runtime.sessions() as session:
            zones = session.execute(
                text("SELECT due_at, count(*) FROM enrollments GROUP BY due_at ORDER BY due_at")
            ).all()

        say(f"send: {args.batches} dispatcher batches, broadcast then sequence")
        send_at = NOW + timedelta(days=1)  # everyone's 09:00 has come
        runtime.dispatcher.tick(send_at, max_batches=1)  # warm: templates, versions
        started = time.perf_counter()
        report = runtime.dispatcher.tick(send_at, max_batches=args.batches)
        sending = time.perf_counter() - started
        news = runtime.content.get("news")
        assert news is not None
        with runtime.sessions.begin() as session:
            count_ = args.batches * settings.batch_size
            binds = {"now": send_at, "version": news.version, "count": count_}
            session.execute(text(SEQUENCE_ENROLMENT), binds)
        started = time.perf_counter()
        ordinary = runtime.dispatcher.tick(send_at, max_batches=args.batches)
        sequence_sending = time.perf_counter() - started

        lines = ["Broadcasts benchmark", ""]
        lines += [f"  {label:<12} {value}" for label, value in facts]
        lines += [
            "",
            f"  leads                         {args.leads:>12,}",
            f"  generated in                  {generated:>11.1f} s",
            f"  baseline: raw INSERT … SELECT {raw:>12,}   {baseline:>7.1f} s",
            f"  dry run: recipients           {count.recipients:>12,}   {counting:>7.1f} s",
            f"  start: enrolled               {runs[0][1]:>12,}   {runs[0][0]:>7.1f} s",
            f"  same start again: enrolled    {runs[1][1]:>12,}   {runs[1][0]:>7.1f} s",
        ]
        lines += [f"    due {at:%Y-%m-%d %H:%M} UTC          {n:>12,}" for at, n in zones]
        for what, done_, spent in (
            ("broadcast", report.sent, sending),
            ("sequence (baseline)", ordinary.sent, sequence_sending),
        ):
            rate = done_ / spent if spent else 0.0
            lines.append(
                f"  send, {what}: {done_:,} emails in {spent:.1f} s ({rate:,.0f}/s, memory mailer)"
            )
        print("\n".join(lines))
    finally:
        if runtime is not None:
            runtime.close()
        if args.database is None and not args.keep:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        elif args.database is None:
            say(f"kept: {url}")
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
