"""The reports' daily summary: every report that reads it (funnel, sources, sequences,
SLA, velocity) gives the figures counted live from the history, on the history of
tests/test_reports.py (March 2026), on SQLite and on PostgreSQL; what it does not see
until the next summary is said in the report and caught up by the worker."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import ROOT, TEST_SECRET
from freezegun import freeze_time
from sqlalchemy import func, select
from test_reports import JULIEN, at, write_history

from nurture.apikeys import create_key
from nurture.app import create_app
from nurture.cli import cli
from nurture.core.reports import GROUPINGS, VIEWS, Request, parse_request
from nurture.core.tables import Table
from nurture.models import Lead, Promotion, ReportDay, StageChange
from nurture.reports import build
from nurture.reports.output import rep_zones
from nurture.reports.sla import treatment
from nurture.reports.summary import due, summarize, summarize_unless_busy
from nurture.runtime import Runtime
from nurture.scheduler import work

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)  # the summary holds March 31 and before


ROUTING = ROOT / "sequences" / "rules" / "routing.yaml"  # the reps' timezones


@pytest.fixture
def history(make_runtime: Any) -> Runtime:
    runtime: Runtime = make_runtime(currency="EUR", routing_file=ROUTING, sla_hours=24)
    with runtime.sessions.begin() as session:
        write_history(session)
    return runtime


def figures(runtime: Runtime, request: Request, now: datetime = NOW) -> Table:
    with runtime.sessions() as session:
        return build(session, request, runtime.settings, now, rep_zones(ROUTING))


def requests(first: str, last: str) -> list[Request]:
    """Every request the summary serves, over these days."""
    asked = []
    for by in GROUPINGS["funnel"]:
        for view in VIEWS:
            asked.append(parse_request("funnel", first, last, by, view=view))
    for by in GROUPINGS["sources"]:
        for model in ("first", "last"):
            asked.append(parse_request("sources", first, last, by, attribution=model))
    asked.append(parse_request("sequences", first, last))
    asked += [parse_request("sla", first, last, by) for by in GROUPINGS["sla"]]
    asked += [parse_request("velocity", first, last, by) for by in GROUPINGS["velocity"]]
    return asked


@pytest.mark.parametrize(
    "first, last",
    [
        ("2026-03-01", "2026-03-31"),  # March: every day from the summary
        ("2026-02-15", "2026-03-20"),  # across the February lead (L11) and its March steps
        ("2026-03-10", "2026-04-01"),  # its last day after the summary: counted live
        ("2026-04-01", "2026-04-01"),  # only today: the summary holds none of it
    ],
)
def test_the_summary_gives_the_figures_counted_live(
    history: Runtime, first: str, last: str
) -> None:
    with history.sessions.begin() as session:
        done = summarize(session, NOW, settings=history.settings)
    assert done.through == date(2026, 3, 31) and done.rebuilt and done.rows > 0
    assert done.measured == 7  # every promotion of the history
    for request in requests(first, last):
        summed = figures(history, request)
        live = figures(history, replace(request, live=True))
        where = f"{request.name} --by {request.by} {request.view} {request.attribution}"
        assert summed.rows == live.rows, where
        if request.name == "sla":  # the same measures, said to come from the summary
            assert summed.notes[:-1] == live.notes[:-1], where
            assert summed.notes[-1].startswith("hand-offs measured on the reps' calendars")
            assert live.notes[-1] == "every hand-off measured now"
            continue
        assert summed.notes[:-1] == live.notes[:-1], where
        assert "--live counts every day" in summed.notes[-1] or last == first == "2026-04-01"
        assert live.notes[-1] == "counted live from the history"


def test_the_report_says_which_days_came_from_the_summary(history: Runtime) -> None:
    env = {
        "NURTURE_DATABASE_URL": history.settings.database_url,
        "NURTURE_SECRET_KEY": TEST_SECRET,
        "NURTURE_SEQUENCES_DIR": str(ROOT / "sequences"),
    }
    with freeze_time(NOW):
        done = CliRunner().invoke(cli, ["summarize"], env=env)
        assert done.exit_code == 0, done.output
        assert done.output.startswith("every day summed (")
        shown = CliRunner().invoke(
            cli, ["report", "funnel", "--from", "2026-03-15", "--to", "2026-04-01"], env=env
        )
    assert shown.exit_code == 0, shown.output
    assert (
        "2026-03-15 to 2026-03-31: the daily summary of 2026-04-01 12:00 UTC (a lead created"
        " earlier counts the steps it had reached by then); 2026-04-01 to 2026-04-01:"
        " counted live; --live counts every day from the history"
    ) in " ".join(shown.output.split())


def test_a_step_reached_after_the_summary_counts_in_the_cohort_at_the_next_one(
    history: Runtime,
) -> None:
    """L3 (created on March 3rd, an MQL) is promoted on April 1st: the period view
    counts it at once (today is counted live); the cohort view of March counts it from
    the worker's next pass over every day, and --live at once."""
    with history.sessions.begin() as session:
        summarize(session, NOW - timedelta(hours=2))
        lead = session.scalars(select(Lead).where(Lead.email == "l3@example.com")).one()
        session.add(Promotion(lead_id=lead.id, cycle=1, reason="late", rep_email=JULIEN,
                              status="pending", status_at=NOW, created_at=NOW))  # fmt: skip
    march = parse_request("funnel", "2026-03-01", "2026-03-31", "source")
    april = parse_request("funnel", "2026-04-01", "2026-04-01", "source", view="period")

    def sql(table: Table) -> int:
        return next(
            row[2] for row in table.rows if row[0] == "linkedin" and row[1] == "SQL (promoted)"
        )

    assert sql(figures(history, april)) == 1
    assert sql(figures(history, march)) == 2  # L1 and L2: the summary was made before
    assert sql(figures(history, replace(march, live=True))) == 3
    with history.sessions.begin() as session:
        summarize(session, NOW, 7)  # the worker's hourly pass: creation days of March 25-31
    assert sql(figures(history, march)) == 2
    with history.sessions.begin() as session:
        summarize(session, NOW)  # its daily pass over every day
    assert sql(figures(history, march)) == 3


def test_the_period_view_counts_each_arrival_and_the_cohort_view_each_lead(
    history: Runtime,
) -> None:
    """L2, promoted on March 5th and recycled, is promoted again on March 20th: two SQLs
    in the period view (sales received it twice), one lead in the cohort view; the same
    whether summed from the days or counted live."""
    with history.sessions.begin() as session:
        lead = session.scalars(select(Lead).where(Lead.email == "l2@example.com")).one()
        again = at("03-20 10:00")
        session.add(StageChange(lead_id=lead.id, from_stage="recycled", to_stage="sql",
                                cause="history", since=at("03-05 15:00"), at=again))  # fmt: skip
        session.add(Promotion(lead_id=lead.id, cycle=2, reason="again", rep_email=JULIEN,
                              status="pending", status_at=again, created_at=again))  # fmt: skip
        summarize(session, NOW)
    for live in (False, True):
        # Period: L1, L11 and L2 twice; cohort: L1 and L2 (L11 was created in February).
        for view, expected in (("period", 4), ("cohort", 2)):
            request = parse_request("funnel", "2026-03-01", "2026-03-31", "campaign",
                                    view=view, live=live)  # fmt: skip
            rows = figures(history, request).rows
            counted = next(r[3] for r in rows if r[1] == "retargeting" and r[2] == "SQL (promoted)")
            assert counted == expected, (view, live)


def test_the_worker_sums_every_day_daily_and_the_last_days_hourly(history: Runtime) -> None:
    with history.sessions() as session:
        assert due(session, NOW) == "every day"
    lines = work(history, NOW, triggers=True)
    assert any(line.startswith("summary: every day summed (") for line in lines), lines
    with history.sessions() as session:
        assert due(session, NOW + timedelta(minutes=55)) is None
        assert due(session, NOW + timedelta(minutes=65)) == "recent days"
        assert due(session, datetime(2026, 4, 2, 0, 5, tzinfo=UTC)) == "every day"
    lines = work(history, NOW + timedelta(minutes=65), triggers=True)
    assert "summary: 2026-03-25 to 2026-03-31 summed" in " ".join(lines)
    assert "summary: up to date" in work(history, NOW + timedelta(minutes=70), triggers=True)


def test_the_last_days_summed_again_leave_the_earlier_ones(history: Runtime) -> None:
    with history.sessions.begin() as session:
        summarize(session, NOW)
        before = session.execute(
            select(ReportDay.day, func.sum(ReportDay.leads)).group_by(ReportDay.day)
        ).all()
        done = summarize(session, NOW, 3)
        after = session.execute(
            select(ReportDay.day, func.sum(ReportDay.leads)).group_by(ReportDay.day)
        ).all()
    assert (done.first, done.through, done.rebuilt) == (date(2026, 3, 29), date(2026, 3, 31), False)
    assert sorted(before) == sorted(after)
    assert date(2026, 2, 20) in {day for day, _ in after}  # L11's day, untouched


def test_two_workers_summing_at_once_leave_one_summary(history: Runtime) -> None:
    """On PostgreSQL a lock orders them; on SQLite the database lets one write at a time.
    Either way each sums every day again and the rows are those of one summary."""
    with history.sessions.begin() as session:
        summarize(session, NOW)
        alone = sorted([tuple(row) for row in session.execute(select(ReportDay.__table__))])
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with history.sessions.begin() as session:
                summarize(session, NOW)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with history.sessions() as session:
        assert sorted([tuple(row) for row in session.execute(select(ReportDay.__table__))]) == alone


def test_the_api_counts_live_when_asked(history: Runtime) -> None:
    with history.sessions.begin() as session:
        summarize(session, NOW)
        key = create_key(session, "read", NOW, ("read",))
    client = create_app(runtime=history).test_client()

    def ask(live: str) -> Any:
        with freeze_time(NOW):
            return client.get(
                f"/api/v1/reports/funnel?from=2026-03-01&to=2026-03-31&live={live}",
                headers={"Authorization": f"Bearer {key}"},
            )

    for live, last in (("true", "counted live from the history"), ("false", "daily summary")):
        answer = ask(live)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert last in answer.get_json()["notes"][-1]
    refused = ask("maybe")
    assert refused.status_code == 422
    assert "live" in refused.get_data(as_text=True)


@pytest.mark.parametrize("by", GROUPINGS["sla"])
def test_the_sla_from_kept_measures_follows_answers_and_time_as_the_live_count(
    history: Runtime, by: str
) -> None:
    """The hand-offs measured by the summary, then: L6's lead answered on April 1st (not
    measured yet: the report measures it and takes every wait for the percentiles), and
    the report run at later instants (overdue and not yet due move with `now`)."""
    with history.sessions.begin() as session:
        summarize(session, NOW, settings=history.settings)
    request = parse_request("sla", "2026-03-01", "2026-03-31", by)

    def same(now: datetime) -> Table:
        summed = figures(history, request, now)
        assert summed.rows == figures(history, replace(request, live=True), now).rows
        return summed

    def everyone(table: Table, column: str) -> Any:
        return table.rows[-1][table.columns.index(column)]

    before = same(NOW)
    with history.sessions.begin() as session:
        lead = session.scalars(select(Lead).where(Lead.email == "l6@example.com")).one()
        promotion = session.scalars(select(Promotion).where(Promotion.lead_id == lead.id)).one()
        promotion.answered_at = promotion.accepted_at = NOW
    answered = same(NOW)  # handed over on March 11th: answered late
    assert everyone(answered, "late") == everyone(before, "late") + 1
    assert everyone(answered, "overdue") == everyone(before, "overdue") - 1
    for later in (timedelta(hours=1), timedelta(days=1), timedelta(days=3)):
        same(NOW + later)
    with history.sessions.begin() as session:
        assert summarize(session, NOW, 7, history.settings).measured == 1  # L6's answer
    same(NOW + timedelta(days=1))


def test_the_treatment_alarm_reads_the_same_rate_from_kept_measures(history: Runtime) -> None:
    """The alarm's rate over the last 30 days: 4 of the 6 hand-offs due were answered in
    time (L1, L2, L10, L11; L4 late, L6 never, L9 not yet due), whether measured now or
    read from the summary's measures."""
    with history.sessions() as session:
        before = treatment(session, history.settings, NOW, rep_zones(ROUTING), 30)
    with history.sessions.begin() as session:
        summarize(session, NOW, settings=history.settings)
    with history.sessions() as session:
        after = treatment(session, history.settings, NOW, rep_zones(ROUTING), 30)
    assert before == after
    assert after == (4, 6)


def test_a_worker_leaves_the_summary_to_the_process_already_summing(
    postgres_url: str, history: Runtime
) -> None:
    """On PostgreSQL: while one transaction sums, a worker's pass returns at once (its
    line says so) instead of waiting; once the first is done, the next pass sums."""
    with history.sessions.begin() as first:
        summarize(first, NOW, settings=history.settings)  # holds the lock until committed
        with history.sessions.begin() as other:
            assert summarize_unless_busy(other, NOW, None, history.settings) is None
        assert "summary: another worker is summing" in work(history, NOW, triggers=True)
    with history.sessions.begin() as session:
        done = summarize_unless_busy(session, NOW, None, history.settings)
    assert done is not None and done.rebuilt
