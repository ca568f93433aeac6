"""`nurture demo`: made-up people through the real routes, the real engine on a moving
clock, a CRM on 127.0.0.1; every step of the product ends up with figures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

import nurture.suppression
from nurture.cli import cli
from nurture.core.intake import parse_lead
from nurture.core.reports import ALL, parse_request
from nurture.demo import DemoRefused, engine_runs, populate
from nurture.leads import upsert_lead
from nurture.mail import OutboxMailer
from nurture.models import (
    ApiKey,
    Base,
    Cost,
    CrmPush,
    Delivery,
    Lead,
    Promotion,
    SalesFeedback,
    TrackingHit,
)
from nurture.reports import build
from nurture.runtime import Runtime

END = datetime(2026, 3, 12, 15, 20, tzinfo=UTC)  # a Thursday afternoon
FUNNEL = ("leads", "MQL", "SQL (promoted)", "accepted", "opportunity", "won")


@pytest.mark.slow  # a month of the whole product: once, on SQLite in CI
def test_a_small_run_gives_every_step_of_the_product_its_figures(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime()
    lines: list[str] = []
    # One month of 150 people; with this seed, one of them is won within the month.
    summary = populate(runtime, leads=150, months=1, end=END, seed=5, progress=lines.append)

    assert summary.leads == 150 and summary.french > 0 and summary.english > 0
    assert summary.start == datetime(2026, 2, 10, tzinfo=UTC) and summary.end == END
    assert [line[:7] for line in lines] == ["2026-02", "2026-03"]  # a line a month
    with runtime.sessions() as session:
        assert _count(session, Lead, Lead.locale == "fr") == summary.french
        # Real sends: to the outbox folder, one file per email (and the reps' digests).
        sent = session.scalars(select(Delivery.message_id).where(Delivery.status == "sent"))
        outbox = OutboxMailer(runtime.settings.outbox_dir)
        assert all(outbox.path_of(message_id).exists() for message_id in sent)
        assert summary.emails_sent > 100 and summary.crm_pushes >= summary.promotions
        # Tracking hits of the three kinds, as the engine labelled them.
        labels = set(session.scalars(select(TrackingHit.classification).distinct()))
        assert {"human", "machine_open", "scanner"} <= labels
        assert summary.opens_human and summary.opens_machine and summary.clicks_human
        assert summary.clicks_scanner and summary.unsubscribed
        # Promotions pushed to the CRM, answered in several ways by several reps.
        assert summary.promotions >= 5 and summary.won >= 1
        assert _count(session, CrmPush, CrmPush.status != "delivered") == 0
        answers = set(session.scalars(select(SalesFeedback.status).distinct()))
        assert len(answers) >= 3 and {"accepted", "won"} <= answers
        reps = set(session.scalars(select(Promotion.rep_email).distinct()))
        assert len(reps - {None}) >= 2
        # Costs for each source, every month: the sources report has its ROI.
        sources = set(session.scalars(select(Cost.source).distinct()))
        assert {"linkedin ads", "google ads", "webinar", "trade show"} <= sources
        # The funnel shows someone at every step, down to won.
        request = parse_request("funnel", f"{summary.start:%Y-%m-%d}", f"{END:%Y-%m-%d}")
        funnel = build(session, request, runtime.settings, END).records()
        reached = {row["step"]: row["leads"] for row in funnel if row["source"] == ALL}
        assert all(reached[step] > 0 for step in FUNNEL), reached
        # The demo's API keys were revoked when it ended.
        assert _count(session, ApiKey, ApiKey.revoked_at.is_(None)) == 0


def test_the_same_seed_gives_the_same_counts(make_runtime: Callable[..., Runtime]) -> None:
    runtime = make_runtime()
    first = populate(runtime, leads=30, months=1, end=END, seed=3)
    _empty(runtime)
    again = populate(runtime, leads=30, months=1, end=END, seed=3)
    assert first.counts() == again.counts()
    assert first.leads == 30 and first.emails_sent > 0 and first.opens_machine > 0


def test_a_database_that_holds_leads_is_refused_and_left_as_it_was(
    make_runtime: Callable[..., Runtime], database_url: str, tmp_path: Path
) -> None:
    runtime = make_runtime()
    with runtime.sessions.begin() as session:
        upsert_lead(session, parse_lead({"email": "ana@atelier.example"}), END)
    with pytest.raises(DemoRefused, match="already holds 1 lead"):
        populate(runtime, leads=10, months=1, end=END, seed=1)

    before = _rows(runtime)
    env = {
        "NURTURE_DATABASE_URL": database_url,
        "NURTURE_SECRET_KEY": runtime.settings.secret_key or "",
        "NURTURE_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NURTURE_SPOOL_DIR": str(tmp_path / "spool"),
        "NURTURE_JOURNAL_DIR": str(tmp_path / "journal"),
    }
    result = CliRunner().invoke(cli, ["demo", "--leads", "10", "--months", "1"], env=env)
    assert result.exit_code == 1, result.output
    assert "already holds 1 lead" in result.output
    assert "NURTURE_DATABASE_URL" in result.output
    assert _rows(runtime) == before


def test_the_command_makes_a_console_admin_whose_password_it_shows_once(
    make_runtime: Callable[..., Runtime], database_url: str, tmp_path: Path
) -> None:
    import re

    from nurture.console.users import authenticate

    runtime = make_runtime()
    env = {
        "NURTURE_DATABASE_URL": database_url,
        "NURTURE_SECRET_KEY": runtime.settings.secret_key or "",
        "NURTURE_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NURTURE_SPOOL_DIR": str(tmp_path / "spool"),
        "NURTURE_JOURNAL_DIR": str(tmp_path / "journal"),
    }
    result = CliRunner().invoke(cli, ["demo", "--leads", "8", "--months", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert "The console, once `nurture run` serves it: http://127.0.0.1:5000/console/" in (
        result.output
    )
    shown = re.search(r"sign in as (\S+) with the password (\S+)", result.output)
    assert shown is not None, result.output
    with runtime.sessions.begin() as session:
        signed = authenticate(session, shown[1], shown[2], END)
        assert signed is not None and signed.role == "admin"


def test_the_engine_runs_three_times_a_weekday_and_once_a_weekend_day() -> None:
    monday = datetime(2026, 3, 9, tzinfo=UTC)
    runs = list(engine_runs(monday, monday + timedelta(days=7)))
    assert len(runs) == 5 * 3 + 2 + 1  # and at the end
    by_day = {run.date(): [r.hour for r in runs if r.date() == run.date()] for run in runs[:-1]}
    assert by_day[monday.date()] == [8, 13, 18]
    assert by_day[(monday + timedelta(days=5)).date()] == [12]
    # Each day a few minutes later than the day before: a wait of whole days never ends
    # on the very minute of a run (see nurture.demo.DRIFT).
    minutes = {run.minute for run in runs[:-1]}
    assert len(minutes) == 7


def _count(session: Session, model: type[Base], *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _rows(runtime: Runtime) -> dict[str, int]:
    with runtime.sessions() as session:
        return {
            table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


def _empty(runtime: Runtime) -> None:
    with runtime.sessions.begin() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(delete(table))
    nurture.suppression._checked.clear()  # as for a new database (tests/conftest.py)
    runtime.content.forget_stored()
