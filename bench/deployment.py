"""Deployment benchmark: `nurture plan` and `nurture apply` with many leads in flight.

    python bench/deployment.py --leads 50000                      # SQLite, a temporary file
    python bench/deployment.py --leads 50000 --database-url postgresql://…/empty_db

1. generate: `--leads` leads inside version 1 of a five-step sequence, each with its
   first email sent; 40 % wait at a step the new version removes (mapped by
   `migrate:`), 40 % at a kept step, 20 % at the renamed email step with that email
   already sent (apply writes a `skipped` delivery for each);
2. baseline: one UPDATE of every enrollment to the new version, rolled back: the least
   any move costs;
3. plan, then apply (committed), as the commands run them.

`--database-url` must name an empty database (it is migrated here). docs/performance.md
("Changing a live sequence") records the figures.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from machine import machine_facts
from sqlalchemy import insert, select, text, update

from nurture.content import Content
from nurture.db import make_engine, make_sessionmaker, upgrade
from nurture.deployment import apply, make_plan
from nurture.models import Delivery, Enrollment, Lead

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HEAD = """\
id: onboarding
name: Onboarding
locales: [en]
entry:
  triggers:
    - event: {name: start}
steps:
  - id: hello
    email: {template: example, kind: onboarding}
"""
V1 = (
    HEAD
    + """\
  - id: long-pause
    wait: 3 days
  - id: tips
    email: {template: guide, kind: guide}
  - id: after-tips
    wait: 2 days
  - id: bye
    email: {template: example, kind: other}
"""
)
V2 = (
    HEAD
    + """\
  - id: short-pause
    wait: 1 day
  - id: tips-v2
    email: {template: guide, kind: guide}
  - id: after-tips
    wait: 2 days
  - id: bye
    email: {template: example, kind: other}
migrate:
  long-pause: short-pause
  tips: tips-v2
"""
)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def generate(sessions: object, version: str, leads: int) -> None:
    entered = NOW - timedelta(days=1)
    with sessions.begin() as session:  # type: ignore[attr-defined]
        session.execute(
            insert(Lead),
            [
                {
                    "public_id": f"b{i}",
                    "email": f"lead{i}@example.com",
                    "stage": "lead",
                    "score": 0,
                    "tags": [],
                    "fields": {},
                    "created_at": entered,
                    "updated_at": entered,
                }
                for i in range(1, leads + 1)
            ],
        )
        ids = session.scalars(select(Lead.id).order_by(Lead.id)).all()
        steps = ["long-pause", "long-pause", "after-tips", "after-tips", "tips"]
        session.execute(
            insert(Enrollment),
            [
                {
                    "lead_id": lead_id,
                    "sequence_id": "onboarding",
                    "version": version,
                    "cycle": 1,
                    "status": "active",
                    "step_id": steps[n % 5],
                    "step_started_at": entered,
                    "due_at": NOW + timedelta(days=1),
                    "priority": 0,
                    "entered_at": entered,
                }
                for n, lead_id in enumerate(ids)
            ],
        )
        rows = session.execute(select(Enrollment.id, Enrollment.lead_id, Enrollment.step_id))
        deliveries = []
        for enrollment_id, lead_id, step_id in rows:
            sent = [("hello", "example")] + ([("tips", "guide")] if step_id == "tips" else [])
            deliveries += [
                {
                    "enrollment_id": enrollment_id,
                    "lead_id": lead_id,
                    "sequence_id": "onboarding",
                    "version": version,
                    "step_id": step,
                    "template": template,
                    "kind": "guide",
                    "status": "sent",
                    "attempts": 1,
                    "message_id": f"{enrollment_id}.{step}@bench.example",
                    "to_email": f"lead{lead_id}@example.com",
                    "links": [],
                    "created_at": entered,
                    "updated_at": entered,
                    "sent_at": entered,
                }
                for step, template in sent
            ]
        session.execute(insert(Delivery), deliveries)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--database-url")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="nurture-deployment-"))
    url = args.database_url or f"sqlite:///{work / 'bench.sqlite'}"
    try:
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        (work / "sequences").mkdir()
        path = work / "sequences" / "onboarding.yaml"
        path.write_text(V1)
        templates = work / "templates"
        shutil.copytree(ROOT / "templates" / "layouts", templates / "layouts")
        for name in ("example", "guide"):
            shutil.copytree(ROOT / "templates" / "emails" / "_example", templates / "emails" / name)
        content = Content(work / "sequences", templates)
        with sessions.begin() as session:
            content.store_versions(session, NOW - timedelta(days=2))
        version = content.live()[0].version
        say(f"generate: {args.leads} leads in flight")
        generate(sessions, version, args.leads)
        path.write_text(V2)
        (templates / "emails" / "guide" / "en" / "subject.txt").write_text("A new guide\n")
        content.reload()

        say("baseline: one UPDATE of every enrollment, rolled back")
        with sessions() as session:
            started = time.perf_counter()
            session.execute(update(Enrollment).values(version=content.live()[0].version))
            baseline = time.perf_counter() - started
            session.rollback()
        say("plan")
        with sessions() as session:
            started = time.perf_counter()
            planned = make_plan(session, content)
            planning = time.perf_counter() - started
        say("apply")
        started = time.perf_counter()
        with sessions.begin() as session:
            done = apply(session, content, NOW)
        applying = time.perf_counter() - started
        with sessions() as session:
            counted = text("SELECT count(*) FROM deliveries WHERE status = 'skipped'")
            skipped = session.scalar(counted)
        engine.dispose()

        postgres = url if url.startswith("postgresql") else None
        lines = ["Deployment benchmark", ""]
        lines += [f"  {label:<12} {value}" for label, value in machine_facts(postgres, ())]
        lines += [
            "",
            f"  database                      {url.split(':', 1)[0]}",
            f"  leads in flight               {args.leads:>10,}",
            f"  baseline (one UPDATE)         {baseline:>10.2f} s",
            f"  plan                          {planning:>10.2f} s   {planned.moving:,} to move",
            f"  apply                         {applying:>10.2f} s   {done.moved:,} moved",
            f"  skipped deliveries written    {skipped or 0:>10,}",
        ]
        print("\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
