"""The console's Dashboards section through Flask's test client, over the March 2026
history of tests/test_reports.py (its `report` fixture writes it and runs the real
`nurture report` command on it): each dashboard shows the report's figures, the
pickers change them, wrong parameters are refused in a sentence, every CSV download
is the command's CSV byte for byte, and costs set from the page change the ROI.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import ROOT, TEST_SECRET
from flask.testing import FlaskClient
from sqlalchemy import select
from test_console_access import Console, token
from test_console_access import cheap_hashes as cheap_hashes  # Argon2 at its cheapest
from test_reports import HYPERLINK, JULIEN, WB, WP
from test_reports import report as report  # the history, and the command run on it
from werkzeug.test import TestResponse

from nurture.app import create_app
from nurture.cli import cli
from nurture.models import AlarmState, Cost
from nurture.web import CLOCK

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)  # when tests/test_reports.py runs its reports
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}
Report = Callable[..., Any]


@pytest.fixture
def board(report: Report, make_runtime: Callable[..., Any]) -> Console:
    """The console over the history, its clock at the reports' time, with the
    settings the command runs with (the routing file's reps, 24 business hours)."""
    runtime = make_runtime(
        routing_file=ROOT / "sequences" / "rules" / "routing.yaml", sla_hours=24, currency="EUR"
    )
    app = create_app(runtime=runtime)
    app.extensions[CLOCK] = lambda: NOW
    return Console(runtime, app)


@pytest.fixture
def marketer(board: Console) -> FlaskClient:
    return board.signed_in("mia@example.com", "marketer")


class _Tables(HTMLParser):
    """The text of every cell of every table with an id, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("id"):
            self.current = found["id"]
            self.tables[self.current] = []
        elif tag == "tr" and self.current:
            self.tables[self.current].append([])
        elif tag in ("td", "th") and self.current:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.current and self.cell is not None:
            self.tables[self.current][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def tables(page: TestResponse) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(page.get_data(as_text=True))
    return parser.tables


def rows(page: TestResponse, table: str, *columns: str) -> list[tuple[str, ...]]:
    """The cells of `columns`, row by row, as the page shows them."""
    header, *body = tables(page)[f"table-{table}"]
    at = [header.index(c) for c in columns]
    return [tuple(row[i] for i in at) for row in body]


def charts(page: TestResponse) -> dict[str, dict[str, Any]]:
    """Each chart's figures, as the page hands them to its script."""
    found = re.findall(
        r'<script type="application/json" id="chart-([\w-]+)-data">(.*?)</script>',
        page.get_data(as_text=True),
    )
    return {key: json.loads(body) for key, body in found}


def show(client: FlaskClient, name: str, **params: str) -> TestResponse:
    page = client.get(f"/console/dashboards/{name}", query_string={**MARCH, **params})
    assert page.status_code == 200, page.get_data(as_text=True)
    return page


# --- each dashboard's figures ---------------------------------------------------------------


def test_the_funnel_shows_each_step_per_source_with_amounts(marketer: FlaskClient) -> None:
    page = show(marketer, "funnel")
    shown = rows(page, "funnel", "source", "step", "leads", "% of previous step", "amount (EUR)")
    assert [r for r in shown if r[0] == "linkedin"] == [
        ("linkedin", "leads", "3", "—", "—"),
        ("linkedin", "MQL", "3", "100.0", "—"),
        ("linkedin", "SQL (promoted)", "2", "66.7", "—"),
        ("linkedin", "accepted", "1", "50.0", "—"),
        ("linkedin", "opportunity", "1", "100.0", "12,000.00"),
        ("linkedin", "won", "1", "100.0", "12,000.00"),
    ]
    assert ("(all)", "won", "2", "66.7", "20,000.00") in shown
    drawn = charts(page)
    assert drawn["funnel-all"]["categories"][0] == "leads"
    assert drawn["funnel-all"]["series"][0]["values"] == [11, 7, 6, 3, 3, 2]
    amounts = drawn["funnel-amounts"]
    assert amounts["categories"] == ["(none)", HYPERLINK, "google", "linkedin", "salon"]
    assert [s["name"] for s in amounts["series"]] == ["opportunity", "won"]
    assert amounts["series"][1]["values"] == [0, 0, 8000, 12000, 0]


def test_the_funnel_by_sequence_in_the_period_view(marketer: FlaskClient) -> None:
    cohort = show(marketer, "funnel", by="sequence")
    leads = {r[0]: r[2] for r in rows(cohort, "funnel", "sequence", "step", "leads")
             if r[1] == "leads"}  # fmt: skip
    assert leads == {WP: "5", WB: "2", "(none)": "4", "(all)": "11"}
    period = show(marketer, "funnel", view="period")
    total = [r[1:] for r in rows(period, "funnel", "source", "step", "leads") if r[0] == "(all)"]
    assert ("SQL (promoted)", "7") in total  # L11, created in February, promoted in March
    assert "Funnel, period view" in period.get_data(as_text=True)


def test_the_sla_draws_the_80_percent_line_and_shows_the_alarm(
    board: Console, marketer: FlaskClient
) -> None:
    page = show(marketer, "sla")
    assert rows(page, "sla", "rep", "sent", "in time", "treatment %", "alert") == [
        (JULIEN, "5", "2", "50.0", "under 80%"),
        ("luc.tremblay@planifia.example", "2", "2", "100.0", ""),
        ("(all)", "7", "4", "66.7", "under 80%"),
    ]
    treatment = charts(page)["sla-treatment"]
    assert treatment["lines"] == [{"value": 80.0, "label": "alarm under 80 %"}]
    assert treatment["series"][0]["values"] == [50.0, 100.0, 66.7]
    assert treatment["series"][0]["alerts"] == [True, False, True]
    text = page.get_data(as_text=True)
    assert f"ALARM: treatment rate 50.0 % for {JULIEN} is under 80%" in text
    assert "not checked yet" in text  # the worker never ran here
    with board.runtime.sessions.begin() as session:
        session.add(AlarmState(name="treatment_rate", raised=True, value=0.5, detail="2 of 4 due",
                               checked_at=NOW, changed_at=NOW))  # fmt: skip
    again = show(marketer, "sla").get_data(as_text=True)
    assert "<strong>raised</strong> since 2026-04-01 14:00, at 50 % — 2 of 4 due." in again


def test_the_line_is_the_configured_threshold(
    report: Report, make_runtime: Callable[..., Any]
) -> None:
    runtime = make_runtime(routing_file=ROOT / "sequences" / "rules" / "routing.yaml",
                           sla_hours=24, treatment_alarm=0.6)  # fmt: skip
    app = create_app(runtime=runtime)
    app.extensions[CLOCK] = lambda: NOW
    client = Console(runtime, app).signed_in("mia@example.com", "marketer")
    page = show(client, "sla")
    treatment = charts(page)["sla-treatment"]
    assert treatment["lines"] == [{"value": 60.0, "label": "alarm under 60 %"}]
    assert treatment["series"][0]["alerts"] == [True, False, False]  # 66.7 % is above 60
    text = page.get_data(as_text=True)
    assert f"ALARM: treatment rate 50.0 % for {JULIEN} is under 60%" in text
    assert "for everyone is under" not in text


def test_the_sla_over_time_is_the_sla_by_month(marketer: FlaskClient) -> None:
    page = show(marketer, "sla", by="month")
    assert rows(page, "sla", "month", "sent", "treatment %") == [
        ("2026-03", "7", "66.7"),
        ("(all)", "7", "66.7"),
    ]
    assert charts(page)["sla-treatment"]["categories"] == ["2026-03", "(all)"]


def test_an_sla_at_or_above_the_line_shows_no_alarm(marketer: FlaskClient) -> None:
    page = show(marketer, "sla", **{"from": "2026-03-12", "to": "2026-03-12"})  # L10 only
    text = page.get_data(as_text=True)
    assert "every treatment rate is at or above 80 %" in text and "ALARM:" not in text


def test_velocity_shows_the_median_and_90th_percentile_of_each_stage(
    marketer: FlaskClient,
) -> None:
    page = show(marketer, "velocity")
    everyone = [r[1:] for r in rows(page, "velocity", "source", "stage", "median (days)",
                                    "p90 (days)") if r[0] == "(all)"]  # fmt: skip
    assert everyone[2] == ("mql", "4.19", "12.67")
    stages = charts(page)["velocity-stages"]
    assert stages["categories"] == ["subscriber", "lead", "mql", "sql", "opportunity",
                                    "lead -> won"]  # fmt: skip
    assert stages["series"][0]["values"][2] == 4.19 and stages["series"][1]["values"][2] == 12.67


def test_sources_show_cost_per_lead_and_roi_under_each_attribution(
    marketer: FlaskClient,
) -> None:
    first = show(marketer, "sources")
    columns = ("source", "leads", "cost (EUR)", "per lead", "per SQL", "ROI %")
    assert ("google", "2", "400.00", "200.00", "200.00", "1,900.0") in rows(
        first, "sources", *columns
    )
    roi = charts(first)["sources-roi"]
    assert roi["categories"][2:] == ["google", "linkedin", "salon", "webinar"]
    assert roi["series"][0]["values"][2:] == [1900.0, 700.0, -100.0, -100.0]
    last = show(marketer, "sources", attribution="last")
    assert ("google", "3", "400.00", "133.33") in [r[:4] for r in rows(last, "sources", *columns)]
    by_campaign = show(marketer, "sources", by="campaign")
    assert ("linkedin", "retargeting", "3", "900.00") in rows(
        by_campaign, "sources", "source", "campaign", "leads", "cost (EUR)"
    )


def test_sequences_show_each_sequence_over_time(marketer: FlaskClient) -> None:
    page = show(marketer, "sequences")  # March is under half a year: per week
    assert (WP, "(all)", "10", "3", "2") in rows(
        page, "sequences", "sequence", "step", "sent", "opened", "clicked"
    )
    # Week of 2 March: D1-D4, D7-D9 and D10 (refused); opened D1, D3; clicked D1, D7.
    # Week of 9 March: D5 (opened, then unsubscribed), D11. D6 was February's.
    weekly = rows(page, "timeline", "week", "sequence", "sent", "opened", "clicked",
                  "unsubscribed")  # fmt: skip
    assert [r for r in weekly if r[1] == WP] == [
        ("2026-02-23", WP, "0", "0", "0", "0"),  # 1 March, a Sunday: a quiet week
        ("2026-03-02", WP, "8", "2", "2", "0"),
        ("2026-03-09", WP, "2", "1", "0", "1"),
        ("2026-03-16", WP, "0", "0", "0", "0"),
        ("2026-03-23", WP, "0", "0", "0", "0"),
        ("2026-03-30", WP, "0", "0", "0", "0"),
    ]
    timeline = {c["title"]: c for c in charts(page).values() if c["title"].endswith("per week")}
    assert set(timeline) == {f"{WB}, per week", f"{WP}, per week"}
    monthly = show(marketer, "sequences", every="month")
    assert [r for r in rows(monthly, "timeline", "month", "sequence", "sent") if r[1] == WP] == [
        ("2026-03", WP, "10")
    ]


def test_deliverability_draws_the_two_limits_per_day(marketer: FlaskClient) -> None:
    page = show(marketer, "deliverability")
    assert ("2026-03-06", "2", "1", "50.000") in rows(
        page, "deliverability", "day", "sent", "bounced", "bounce %"
    )
    rates = charts(page)["deliverability-rates"]
    assert [line["value"] for line in rates["lines"]] == [0.1, 0.3]
    assert rates["categories"][:2] == ["2026-03-02", "2026-03-03"]
    assert rates["series"][0]["values"][4] == 50.0
    text = page.get_data(as_text=True)
    assert "WARNING: bounce rate 50.000 % on 2026-03-06, at or above 0.3 %" in text


def test_the_section_page_lists_the_dashboards_and_the_alarms(marketer: FlaskClient) -> None:
    page = marketer.get("/console/dashboards")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for title in ("Funnel", "Sales SLA", "Velocity", "Sources", "Sequences", "Deliverability"):
        assert f">{title}</a>" in text
    assert "2026-01-02 to 2026-04-01" in text  # the last 90 days, in Paris
    assert [r[0] for r in tables(page)["alarms"][1:]] == [
        "Treatment rate of leads sent to sales",
        "Spam-complaint rate",
    ]


# --- the pickers ----------------------------------------------------------------------------


def test_without_dates_a_dashboard_shows_the_last_90_days(marketer: FlaskClient) -> None:
    page = marketer.get("/console/dashboards/funnel")
    text = page.get_data(as_text=True)
    assert 'name="from" id="from" value="2026-01-02"' in text
    assert 'name="to" id="to" value="2026-04-01"' in text
    assert "Funnel, cohort view, 2026-01-02 to 2026-04-01 (UTC days), by source" in text
    # L11, created on 20 February, is in these 90 days, not in March.
    assert ("(all)", "leads", "12") in rows(page, "funnel", "source", "step", "leads")


def test_the_dates_change_the_figures(marketer: FlaskClient) -> None:
    early = show(marketer, "funnel", **{"from": "2026-03-01", "to": "2026-03-05"})
    assert ("(all)", "leads", "6") in rows(early, "funnel", "source", "step", "leads")  # L1-L6
    late = show(marketer, "funnel", **{"from": "2026-03-06", "to": "2026-03-31"})
    assert ("(all)", "leads", "5") in rows(late, "funnel", "source", "step", "leads")


@pytest.mark.parametrize(
    ("name", "params", "said"),
    [
        ("funnel", {"from": "2026-04-01", "to": "2026-03-31"},
         "from 2026-04-01 is after to 2026-03-31"),
        ("funnel", {"from": "2026-02-30"}, "from: expected a day as YYYY-MM-DD"),
        ("sla", {"to": "31/03/2026"}, "to: expected a day as YYYY-MM-DD"),
        ("sla", {"by": "week"},
         "sla cannot be grouped by week: expected rep, source, campaign, sequence or month"),
        ("sources", {"attribution": "linear"}, "attribution linear: the sources report takes"),
        ("velocity", {"view": "period"}, "view period: the funnel report takes"),
        ("sequences", {"every": "day"}, "every day: expected week or month"),
        ("sequences", {"from": "2000-01-01", "to": "2026-03-31", "every": "week"},
         "every week: more than 60 weeks"),
    ],
)  # fmt: skip
def test_wrong_parameters_are_refused_in_a_sentence(
    marketer: FlaskClient, name: str, params: dict[str, str], said: str
) -> None:
    for path in (f"/console/dashboards/{name}", f"/console/dashboards/{name}/csv"):
        page = marketer.get(path, query_string=params)
        assert page.status_code == 400, path
        assert page.mimetype == "text/html"
        problem = re.search(r'<p class="problem" role="alert" id="problem">(.*?)</p>',
                            page.get_data(as_text=True))  # fmt: skip
        assert problem and said in problem.group(1).replace("&#39;", "'"), page.get_data(
            as_text=True
        )


def test_an_unknown_dashboard_is_not_found(marketer: FlaskClient) -> None:
    assert marketer.get("/console/dashboards/churn").status_code == 404
    assert marketer.get("/console/dashboards/churn/csv").status_code == 404


# --- CSV ----------------------------------------------------------------------------------------

CASES = [
    ("funnel", {}),
    ("funnel", {"by": "sequence", "view": "period"}),
    ("funnel", {"by": "month", "view": "period", "from": "2026-02-01"}),
    ("sla", {}),
    ("sla", {"by": "month"}),
    ("velocity", {"by": "campaign"}),
    ("sources", {"attribution": "last"}),
    ("sources", {"by": "campaign"}),
    ("sequences", {}),
    ("deliverability", {}),
]


@pytest.mark.parametrize(("name", "params"), CASES)
def test_a_csv_download_is_the_report_commands_csv(
    report: Report, marketer: FlaskClient, name: str, params: dict[str, str]
) -> None:
    page = show(marketer, name, **params)
    link = re.search(r'id="csv-' + name + r'" href="([^"]+)"', page.get_data(as_text=True))
    assert link
    download = marketer.get(link.group(1).replace("&amp;", "&"))
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert download.headers["Content-Disposition"].startswith("attachment; filename=")
    assert download.headers["Cache-Control"] == "no-store"  # signed-in figures
    asked = {**MARCH, **params}
    options = [f"--{key}={value}" for key, value in asked.items() if key != "every"]
    done = report(name, *options, "--format", "csv")
    assert done.exit_code == 0, done.output
    assert download.data == done.output.encode()
    # The page names that very command.
    command = re.search(r"<code>(nurture report [^<]+)</code>", page.get_data(as_text=True))
    assert command
    words = command.group(1).split()[2:]
    again = report(*words)
    assert again.output.encode() == download.data


def test_a_source_named_like_a_formula_is_text_in_every_csv(marketer: FlaskClient) -> None:
    for name in ("funnel", "sources"):
        download = marketer.get(f"/console/dashboards/{name}/csv", query_string=MARCH)
        cells = [row[0] for row in csv.reader(io.StringIO(download.get_data(as_text=True)))]
        assert "'" + HYPERLINK in cells and HYPERLINK not in cells
    page = show(marketer, "sources").get_data(as_text=True)
    assert "=HYPERLINK(&#34;x&#34;)" in page or "=HYPERLINK(&quot;x&quot;)" in page  # as text


def test_the_timeline_downloads_as_csv(marketer: FlaskClient) -> None:
    download = marketer.get(
        "/console/dashboards/sequences/timeline/csv", query_string={**MARCH, "every": "month"}
    )
    assert download.status_code == 200 and download.mimetype == "text/csv"
    lines = download.get_data(as_text=True).splitlines()
    assert lines[0] == "month,sequence,sent,delivered,opened,clicked,unsubscribed,open %,click %"
    assert f"2026-03,{WP},10,8,3,2,1,37.5,25.0" in lines


# --- costs --------------------------------------------------------------------------------------


def costs_of(board: Console) -> list[tuple[str, str, str, Decimal]]:
    with board.runtime.sessions() as session:
        found = session.execute(select(Cost.source, Cost.campaign, Cost.month, Cost.amount))
        return sorted((s, c, m, a) for s, c, m, a in found)


def set_cost(client: FlaskClient, **fields: str) -> TestResponse:
    data = {"csrf_token": token(client, "/console/dashboards/costs"), "currency": "EUR", **fields}
    return client.post("/console/dashboards/costs", data=data)


def test_a_cost_set_on_the_page_changes_the_roi(board: Console, marketer: FlaskClient) -> None:
    columns = ("source", "cost (EUR)", "per lead", "ROI %")
    before = show(marketer, "sources")
    assert ("google", "400.00", "200.00", "1,900.0") in rows(before, "sources", *columns)
    done = set_cost(marketer, source="google", campaign="search", month="2026-03", amount="800")
    assert done.status_code == 303
    page = marketer.get(done.headers["Location"])
    assert "google / search 2026-03: 800.00 EUR (was 400.00 EUR)" in page.get_data(as_text=True)
    assert ("2026-03", "google", "search", "800.00", "—") in rows(
        page, "costs", "month", "source", "campaign", "amount (EUR)", "entered as"
    )
    after = show(marketer, "sources")
    # (8000 - 800) / 800
    assert ("google", "800.00", "400.00", "900.0") in rows(after, "sources", *columns)
    assert charts(after)["sources-roi"]["series"][0]["values"][2] == 900.0


def test_a_cost_in_another_currency_needs_its_rate(board: Console, marketer: FlaskClient) -> None:
    done = set_cost(marketer, source="linkedin", campaign="brand", month="2026-03",
                    amount="1000", currency="USD", rate="0.9213")  # fmt: skip
    assert done.status_code == 303
    assert ("linkedin", "brand", "2026-03", Decimal("921.30")) in costs_of(board)


@pytest.mark.parametrize(
    ("fields", "field", "said"),
    [
        ({"amount": "12,50"}, "amount", "expected a number such as 1200 or 1200.50"),
        ({"amount": "-5"}, "amount", "expected a number from 0 to"),
        ({"month": "2026-13"}, "month", "expected a month as YYYY-MM"),
        ({"month": "March"}, "month", "expected a month as YYYY-MM"),
        ({"currency": "USD"}, "currency", "costs are kept in EUR"),
        ({"source": ""}, "source", "expected a name"),
        ({"rate": "2"}, "rate", "only for an amount in another currency"),
    ],
)
def test_a_wrong_cost_is_refused_beside_its_field_and_changes_nothing(
    board: Console, marketer: FlaskClient, fields: dict[str, str], field: str, said: str
) -> None:
    before = costs_of(board)
    typed = {"source": "google", "campaign": "search", "month": "2026-03", "amount": "800",
             **fields}  # fmt: skip
    page = set_cost(marketer, **typed)
    assert page.status_code == 400
    text = page.get_data(as_text=True)
    problem = re.search(rf'<p class="problem" id="cost-{field}-problem">(.*?)</p>', text)
    assert problem and problem.group(1).startswith(f"{field}: ") and said in problem.group(1)
    assert f'id="cost-{field}" name="{field}"' in text and 'aria-invalid="true"' in text
    assert f'value="{typed["amount"]}"' in text  # what was typed stays in the form
    assert costs_of(board) == before


def test_the_costs_csv_is_the_costs_commands_csv(board: Console, marketer: FlaskClient) -> None:
    set_cost(marketer, source=HYPERLINK, month="2026-03", amount="10")
    download = marketer.get("/console/dashboards/costs/csv")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    env = {"NURTURE_DATABASE_URL": board.runtime.settings.database_url,
           "NURTURE_SECRET_KEY": TEST_SECRET, "NURTURE_CURRENCY": "EUR"}  # fmt: skip
    done = CliRunner().invoke(cli, ["costs", "list", "--format", "csv"], env=env)
    assert done.exit_code == 0, done.output
    assert download.data == done.output.encode()
    cells = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert ["2026-03", "'" + HYPERLINK, "", "10.00", ""] in cells


def test_a_viewer_sees_the_costs_but_cannot_set_one(board: Console) -> None:
    viewer = board.signed_in("vic@example.com", "viewer")
    page = viewer.get("/console/dashboards/costs")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "table-costs" in text and "Set a cost" not in text
    before = costs_of(board)
    refused = set_cost(viewer, source="google", month="2026-03", amount="1")
    assert refused.status_code == 403
    assert costs_of(board) == before


def test_a_form_without_the_token_sets_nothing(board: Console, marketer: FlaskClient) -> None:
    before = costs_of(board)
    typed = {"source": "google", "month": "2026-03", "amount": "1"}
    refused = marketer.post("/console/dashboards/costs", data=typed)
    assert refused.status_code == 400 and "Form refused" in refused.get_data(as_text=True)
    assert costs_of(board) == before


# --- who may open it, and what the pages carry ---------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/console/dashboards",
        "/console/dashboards/funnel",
        "/console/dashboards/sla/csv",
        "/console/dashboards/sequences/timeline/csv",
        "/console/dashboards/costs",
        "/console/dashboards/costs/csv",
    ],
)
def test_sales_cannot_open_the_section(board: Console, path: str) -> None:
    rep = board.signed_in("rep@example.com", "sales", rep=JULIEN)
    page = rep.get(path, query_string=MARCH)
    assert page.status_code == 403
    assert "Your role (sales) does not open this page." in page.get_data(as_text=True)
    assert set_cost(rep, source="x", month="2026-03", amount="1").status_code == 403


@pytest.mark.parametrize("role", ["viewer", "marketer", "admin"])
def test_viewers_marketers_and_admins_open_every_dashboard(board: Console, role: str) -> None:
    client = board.signed_in(f"{role}@example.com", role)
    for name in ("funnel", "sla", "velocity", "sources", "sequences", "deliverability"):
        assert show(client, name).status_code == 200


HOSTILE = '</script><script>alert("x")</script><img src=x onerror=alert(1)>'


def test_names_typed_by_others_are_escaped_in_tables_and_chart_data(
    board: Console, marketer: FlaskClient
) -> None:
    set_cost(marketer, source=HOSTILE, month="2026-03", amount="10")
    for path in ("/console/dashboards/sources", "/console/dashboards/costs"):
        text = marketer.get(path, query_string=MARCH).get_data(as_text=True)
        assert HOSTILE not in text and "<img src=x" not in text, path
        assert "&lt;/script&gt;&lt;script&gt;alert" in text, path
        # Scripts are files or JSON blocks; no style attribute, no handler, no <style>.
        for tag in re.findall(r"<script[^>]*>", text):
            assert 'src="/console/static/' in tag or 'type="application/json"' in tag, tag
        assert "<style" not in text and " style=" not in text
        assert not re.search(r"<[^>]*\son[a-z]+=", text)  # no handler inside a tag
    page = show(marketer, "sources")
    names = charts(page)["sources-roi"]["categories"]
    assert HOSTILE in names  # the figure's name, intact, for the canvas to draw as text
