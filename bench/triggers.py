"""Triggers benchmark: an inactivity trigger over a million leads on PostgreSQL.

    python bench/triggers.py            # --leads 1000000 --clicked 0.3

1. generate: `--leads` leads (set-based: INSERT … SELECT generate_series), a share
   `--clicked` of them with a human click in the last 90 days, a tenth with a form
   submitted a year ago, one in fifty unsubscribed;
2. baseline: a plain count of the leads the trigger matches (the same query, nothing
   written);
3. trigger: `nurture.triggers.fire` for a 90-day inactivity trigger, as the worker's
   job runs it: select, record each firing, enrol each lead; then the same run again
   (everyone found is inside the sequence now: nothing to do).

The database is `nurture_triggers_<pid>` on `--postgres-admin`'s server, dropped at the
end unless `--keep`. docs/performance.md ("Triggers") records the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from machine import machine_facts
from sqlalchemy import func, select, text

from nurture.config import load_settings
from nurture.db import upgrade
from nurture.runtime import Runtime
from nurture.triggers import fire, matching

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-0123456789abcdef"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

WIN_BACK = """\
id: win-back
name: Win back cold leads
locales: [en]
entry:
  triggers:
    - inactive: {days: 90}
  audience:
    country: [FR, BE, DE]
  reentry: {after: 180 days}
exit:
  events: [email_clicked]
steps:
  - id: last-chance
    email: {template: example, kind: other}
"""

LEADS = """
INSERT INTO leads (public_id, email, country, stage, score, tags, fields, created_at,
                   updated_at, unsubscribed_at)
SELECT 'bench' || g, 'lead' || g || '@example.com', (ARRAY['FR', 'BE', 'DE', 'US'])[1 + g % 4],
       'lead', 0, '[]'::jsonb, '{}'::jsonb, :now - make_interval(days => 100 + g % 900),
       :now, CASE WHEN g % 50 = 0 THEN :now - interval '30 days' END
FROM generate_series(1, :leads) AS g
"""
CLICKS = """
INSERT INTO events (lead_id, name, properties, origin, occurred_at, recorded_at,
                    classification)
SELECT id, 'email_clicked', '{}'::jsonb, 'tracking', :now - make_interval(days => id % 90),
       :now, 'human'
FROM leads WHERE id % 1000 < :clicked_per_mille
"""
FORMS = """
INSERT INTO events (lead_id, name, properties, origin, occurred_at, recorded_at)
SELECT id, 'form_submitted', '{}'::jsonb, 'api', :now - interval '365 days', :now
FROM leads WHERE id % 10 = 3
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--clicked", type=float, default=0.3)
    parser.add_argument("--postgres-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name = f"nurture_triggers_{os.getpid()}"
    admin = args.postgres_admin
    url = f"{admin.rsplit('/', 1)[0]}/{name}"
    work = Path(tempfile.mkdtemp(prefix="nurture-triggers-"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    runtime: Runtime | None = None
    try:
        upgrade(url)
        (work / "sequences").mkdir()
        (work / "sequences" / "win-back.yaml").write_text(WIN_BACK)
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
        runtime = Runtime(settings)
        facts = machine_facts(admin, ("SQLAlchemy", "psycopg"))
        sequence = runtime.content.live()[0]
        trigger = sequence.triggers[0]

        say(f"generate: {args.leads} leads")
        started = time.perf_counter()
        binds = {"now": NOW, "leads": args.leads, "clicked_per_mille": int(args.clicked * 1000)}
        with runtime.sessions.begin() as session:
            for statement in (LEADS, CLICKS, FORMS):
                session.execute(text(statement), binds)
        with runtime.engine.connect() as connection:
            connection.execute(text("COMMIT"))
            connection.execute(text("ANALYZE"))
        generated = time.perf_counter() - started

        say("baseline: counting the matching leads")
        with runtime.sessions() as session:
            started = time.perf_counter()
            _, found = matching(session, sequence, trigger, NOW)
            count = session.scalar(select(func.count()).select_from(found.subquery()))
            baseline = time.perf_counter() - started

        say("trigger: select and enrol")
        runs = []
        for _ in range(2):
            started = time.perf_counter()
            with runtime.sessions.begin() as session:
                fired = fire(session, runtime.content, sequence, trigger, NOW)
            runs.append((time.perf_counter() - started, fired.enrolled))
        with runtime.sessions() as session:
            enrolled = session.scalar(text("SELECT count(*) FROM enrollments"))

        lines = ["Triggers benchmark", ""]
        lines += [f"  {label:<12} {value}" for label, value in facts]
        lines += [
            "",
            f"  leads                      {args.leads:>12,}",
            f"  generated in               {generated:>11.1f} s",
            f"  matching (baseline count)  {count or 0:>12,}   {baseline:>7.1f} s",
            f"  first run: enrolled        {runs[0][1]:>12,}   {runs[0][0]:>7.1f} s",
            f"  second run: enrolled       {runs[1][1]:>12,}   {runs[1][0]:>7.1f} s",
            f"  enrollments in the table   {enrolled or 0:>12,}",
        ]
        print("\n".join(lines))
    finally:
        if runtime is not None:
            runtime.close()
        if args.keep:
            say(f"kept: {url}")
        else:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
