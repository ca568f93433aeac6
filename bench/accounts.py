"""Accounts benchmark on PostgreSQL: grouping stored leads, the account rule, the view.

    python bench/accounts.py --url postgresql://postgres@127.0.0.1/nurture_bench
                             [--leads 100000] [--per-account 5] [--clicked 0.2]

1. generate: `--leads` leads (INSERT … SELECT generate_series), `--per-account` people
   per company domain, one in ten on a personal mailbox; a share `--clicked` of them
   with a human click in the last 30 days (one in four of those clicks is a scanner's);
2. rebuild: `nurture.accounts.rebuild`, every lead put in its account;
3. baseline: a plain count of the window's human clicks (what the rule must read);
4. the account rule: `promote_accounts`, as the worker's triggers job runs it (one
   statement, then each account's contact promoted the usual way), then the same run
   again (nothing new: the tick's steady cost);
5. the view: the list's first 50 accounts, and one account's figures.

The database at `--url` is EMPTIED first (every nurture table): give it a database of
its own. docs/accounts.md ("Figures") records the results.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from nurture.account_promotion import promote_accounts
from nurture.accounts import engagement, figures_of, listing, rebuild
from nurture.config import load_settings
from nurture.db import upgrade
from nurture.models import Account, Base, Event
from nurture.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

LEADS = """
INSERT INTO leads (public_id, email, company, country, company_size, job_title, stage, score,
                   grade, tags, fields, created_at, updated_at, behaviour_points, cycle)
SELECT 'ld_b' || n, CASE WHEN n % 10 = 0 THEN 'p' || n || '@gmail.com'
                         ELSE 'p' || n || '@company' || (n / :per) || '.example' END,
       'Company ' || (n / :per), 'FR', 300, 'Planner', 'lead', 0, 'B', '[]', '{}',
       :at, :at, 0, 1
FROM generate_series(1, :leads) AS n
"""
CLICKS = """
INSERT INTO events (lead_id, name, properties, classification, origin, occurred_at, recorded_at)
SELECT id, 'email_clicked', '{"kind": "guide"}',
       CASE WHEN id % 4 = 0 THEN 'scanner' ELSE 'human' END, 'tracking',
       :now - (id % 29 + 1) * interval '1 day', :now
FROM leads WHERE random() < :share
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a PostgreSQL database it may empty")
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--per-account", type=int, default=5)
    parser.add_argument("--clicked", type=float, default=0.2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        os.environ.update(
            NURTURE_DATABASE_URL=args.url,
            NURTURE_SECRET_KEY="bench-secret-key-0123456789abcdef",
            NURTURE_SEQUENCES_DIR=str(ROOT / "sequences"),
            NURTURE_TEMPLATES_DIR=str(ROOT / "templates"),
            NURTURE_OUTBOX_DIR=folder,
            NURTURE_SPOOL_DIR=folder,
            NURTURE_JOURNAL_DIR=folder,
        )
        upgrade(args.url)
        runtime = Runtime(load_settings())
        try:
            run(runtime, args)
        finally:
            runtime.close()


def timed(label: str, work: object) -> object:
    started = time.perf_counter()
    result = work() if callable(work) else work
    print(f"{label}: {time.perf_counter() - started:.2f} s  ({result})")
    return result


def run(runtime: Runtime, args: argparse.Namespace) -> None:
    content = runtime.content
    with runtime.sessions.begin() as session:
        names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
        session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        session.execute(
            text(LEADS), {"per": args.per_account, "leads": args.leads, "at": NOW - timedelta(90)}
        )
        session.execute(text(CLICKS), {"now": NOW, "share": args.clicked})
        session.execute(text("ANALYZE"))
    print(f"{args.leads} leads, {args.per_account} per company, {args.clicked:.0%} clicked")

    timed(
        "rebuild (every lead put in its account)", lambda: rebuild(runtime.sessions, content, NOW)
    )
    with runtime.sessions.begin() as session:
        accounts = session.scalar(select(func.count()).select_from(Account))
        print(f"  {accounts} accounts")
        session.execute(text("ANALYZE"))  # as autovacuum does after so many changes

    def baseline() -> int:
        with runtime.sessions() as session:
            query = select(func.count()).where(
                engagement(("email_clicked",), NOW - timedelta(days=30), NOW)
            )
            return int(session.scalar(query.select_from(Event)) or 0)

    timed("baseline: count the window's human clicks", baseline)

    def rule() -> object:
        with runtime.sessions.begin() as session:
            return promote_accounts(session, content, NOW, runtime.settings.sla)

    timed("account rule, first run", rule)
    timed("account rule, again (a run's steady cost)", rule)

    def view() -> str:
        with runtime.sessions() as session:
            shown = listing(session, content, NOW, 50)
            one = figures_of(session, content, shown[0].id, NOW)
        return f"{len(shown)} accounts, the first with {one.engaged_contacts} engaged"

    timed("view: the list's first 50 accounts", view)


if __name__ == "__main__":
    main()
