"""A/B split benchmark: the per-variant results of one split, and the assignment hash.

    python bench/splits.py --database-url postgresql://postgres@127.0.0.1:5432/DB --leads 100000

1. generate (set-based, INSERT … SELECT generate_series: PostgreSQL only): `--leads`
   leads, each enrolled once and assigned one of two variants or the holdout (10 %),
   the split's email sent to every non-holdout lead, a human click on one email in
   twenty, one lead in fifty reaching MQL after its assignment;
2. baseline: the leads per variant (one grouped count of the assignments);
3. results: `nurture.experiments.counts`, what `nurture split results` and the
   sequence report read (entered, sent, clicked, MQL, SQL per variant), best of 5;
4. assignment: `nurture.core.experiments.assign` over `--leads` lead ids, in memory.

The database given is upgraded and EMPTIED first: give a throwaway one.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from machine import machine_facts
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from nurture.core.experiments import assign
from nurture.core.sequence_parser import parse_sequence
from nurture.db import upgrade
from nurture.experiments import counts
from nurture.models import Base, SplitAssignment

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SEQUENCE = """\
id: bench
name: Bench
entry: {triggers: [lead_created]}
steps:
  - id: welcome
    split:
      email: {template: example, kind: guide}
      variants: {a: {weight: 1}, b: {weight: 1, subject: "Another"}}
      holdout: 0.1
"""
FILL = """
INSERT INTO leads (id, public_id, email, stage, score, behaviour_points, cycle, tags, fields,
                   created_at, updated_at)
SELECT n, 'ld_' || n, 'lead' || n || '@example.com', 'lead', 0, 0, 1, '[]', '{}', :t0, :t0
FROM generate_series(1, :n) AS n;
INSERT INTO enrollments (id, lead_id, sequence_id, version, cycle, status, step_id,
                         step_started_at, priority, entered_at)
SELECT n, n, 'bench', 'v1', 1, 'active', 'pause', :t0, 0, :t0 FROM generate_series(1, :n) AS n;
INSERT INTO split_assignments (lead_id, enrollment_id, sequence_id, split_id, variant,
                               assigned_at)
SELECT n, n, 'bench', 'welcome',
       CASE WHEN n % 10 = 0 THEN 'holdout' WHEN (n / 10) % 2 = 0 THEN 'a' ELSE 'b' END, :t0
FROM generate_series(1, :n) AS n;
INSERT INTO deliveries (enrollment_id, lead_id, sequence_id, version, step_id, template, kind,
                        status, attempts, message_id, to_email, links, created_at, updated_at,
                        sent_at, clicked_at)
SELECT n, n, 'bench', 'v1', 'welcome', 'example', 'guide', 'sent', 1,
       '<' || n || '@bench>', 'lead' || n || '@example.com', '[]', :t0, :t0, :t0,
       CASE WHEN n % 20 = 1 THEN CAST(:t1 AS timestamptz) END
FROM generate_series(1, :n) AS n WHERE n % 10 <> 0;
INSERT INTO stage_changes (lead_id, from_stage, to_stage, cause, at)
SELECT n, 'lead', 'mql', 'bench', :t1 FROM generate_series(1, :n) AS n WHERE n % 50 = 3;
"""


def empty(url: str) -> None:
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(text(f"DELETE FROM {table.name}"))
    engine.dispose()


def best(runs: int, job: object) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        job()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--leads", type=int, default=100_000)
    args = parser.parse_args()
    for name, value in machine_facts(args.database_url, ("SQLAlchemy", "psycopg")):
        print(f"{name}: {value}")
    empty(args.database_url)
    engine = create_engine(args.database_url)
    if engine.dialect.name != "postgresql":
        raise SystemExit("the generator is set-based SQL for PostgreSQL")
    start = time.perf_counter()
    with engine.begin() as connection:
        values = {"n": args.leads, "t0": T0, "t1": T0 + timedelta(hours=2)}
        for statement in filter(str.strip, FILL.split(";")):
            connection.execute(text(statement), values)
        connection.execute(text("ANALYZE"))
    print(f"generated {args.leads:,} assigned leads in {time.perf_counter() - start:.1f} s")
    with Session(engine) as session:
        grouped = select(SplitAssignment.variant, func.count()).group_by(SplitAssignment.variant)
        baseline = best(5, lambda: session.execute(grouped).all())
        found = counts(session, "bench", "welcome")
        results = best(5, lambda: counts(session, "bench", "welcome"))
    for name in sorted(found):
        c = found[name]
        print(f"  {name:8} entered {c.entered:>8,} sent {c.sent:>8,} clicked {c.clicked:>7,}"
              f" mql {c.mql:>6,}")  # fmt: skip
    sequence = parse_sequence(SEQUENCE, "bench.yaml").sequence
    assert sequence is not None
    [split] = sequence.splits()
    hashing = best(3, lambda: [assign(split, "bench", str(n)) for n in range(args.leads)])
    print(f"baseline (leads per variant): {baseline * 1000:.1f} ms")
    print(f"results (entered, sent, clicked, MQL, SQL per variant): {results * 1000:.1f} ms")
    print(f"assignment hash: {args.leads / hashing:,.0f} leads/s")
    engine.dispose()


if __name__ == "__main__":
    main()
