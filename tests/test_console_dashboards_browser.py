"""The Dashboards section in a real browser (headless Chromium, through the fixtures of
tests/test_console_browser.py), over the March 2026 history of tests/test_reports.py:
every chart is drawn with its figures under the console's strict policy, the SLA's
80 % line and alarm are on the page, a CSV downloaded through the page is the report
command's, and a cost entered through the form changes the ROI.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from test_browser_pages import Serving, Website
from test_browser_pages import browser as browser  # the module's Chromium, reused
from test_console_browser import Opened, Site, Visitor
from test_console_browser import cheap_hashes as cheap_hashes  # Argon2 at its cheapest
from test_console_browser import visitor as visitor
from test_reports import HYPERLINK, JULIEN
from test_reports import report as report  # the history, and the command run on it

from nurture.app import create_app
from nurture.runtime import Runtime
from nurture.web import CLOCK

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)  # when tests/test_reports.py runs its reports
MARCH = "from=2026-03-01&to=2026-03-31"
ALERT = "#b42318"  # the alarm's colour in dashboards.js
# How many painted pixels a chart's canvas has (0: nothing drawn).
PAINTED = """(box) => {
  const canvas = box.querySelector("canvas");
  if (!canvas || !canvas.width || !canvas.height) return 0;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
  return painted;
}"""
# What the chart was given, as ECharts holds it.
OPTION = "(id) => echarts.getInstanceByDom(document.getElementById(id)).getOption()"


@pytest.fixture
def site(report: Callable[..., Any], make_runtime: Callable[..., Runtime]) -> Iterator[Site]:
    """The console served for real over the history, its clock at the reports' time."""
    runtime = make_runtime(
        routing_file=ROOT / "sequences" / "rules" / "routing.yaml", sla_hours=24, currency="EUR"
    )
    app = create_app(runtime=runtime)
    app.extensions[CLOCK] = lambda: NOW
    serving = Serving(app)
    website = Website()
    try:
        yield Site(runtime, f"http://127.0.0.1:{serving.server.server_port}", website)
    finally:
        website.stop()
        serving.stop()


@pytest.fixture
def mia(site: Site, visitor: Callable[[], Visitor]) -> Visitor:
    site.add_user("mia@example.com", "marketer")
    signed = visitor()
    assert signed.sign_in("mia@example.com").status == 200
    return signed


def drawn(opened: Opened) -> dict[str, int]:
    """Each chart of the page and its painted pixels, once the script has drawn them."""
    page = opened.page
    page.wait_for_function(
        "document.querySelectorAll('.chart').length"
        " === document.querySelectorAll('.chart[data-drawn]').length"
    )
    return {box.get_attribute("id") or "": box.evaluate(PAINTED) for box in
            page.locator(".chart").all()}  # fmt: skip


def clean(opened: Opened) -> None:
    assert opened.violations() == [], opened.page.url
    assert [m for m in opened.console if m.startswith("page error")] == [], opened.console


def cell(opened: Opened, table: str, first: str, column: str) -> str:
    """The text of the table's cell in `column`, on the row whose first cell is `first`."""
    found: str = opened.page.evaluate(
        """([table, first, column]) => {
          const rows = [...document.querySelectorAll(`#${table} tr`)];
          const header = [...rows[0].cells].map((c) => c.textContent.trim());
          const row = rows.find((r) => r.cells[0].textContent.trim() === first);
          return row ? row.cells[header.indexOf(column)].textContent.trim() : null;
        }""",
        [table, first, column],
    )
    return found


EXPECTED = {  # a figure of each dashboard's table: table, row, column, as shown
    "funnel": ("table-funnel", "(all)", "leads", "11"),  # its first row: leads
    "sla": ("table-sla", JULIEN, "treatment %", "50.0"),
    "velocity": ("table-velocity", "(all)", "p90 (days)", "1.00"),
    "sources": ("table-sources", "google", "ROI %", "1,900.0"),
    "sequences": ("table-sequences", "whitepaper-evaluation", "sent", "10"),
    "deliverability": ("table-deliverability", "2026-03-06", "bounce %", "50.000"),
}
CHARTS = {
    "funnel": ["chart-funnel-all", "chart-funnel-groups", "chart-funnel-amounts"],
    "sla": ["chart-sla-treatment", "chart-sla-states"],
    "velocity": ["chart-velocity-stages"],
    "sources": ["chart-sources-money", "chart-sources-roi"],
    "sequences": ["chart-sequences-period", "chart-timeline-0", "chart-timeline-1"],
    "deliverability": ["chart-deliverability-rates", "chart-deliverability-sent"],
}


def test_every_dashboard_draws_its_charts_with_their_figures(mia: Visitor) -> None:
    section = mia.open("/console/dashboards")
    assert section.status == 200 and "Treatment rate of leads sent to sales" in section.text()
    clean(section)
    for name, (table, row, column, figure) in EXPECTED.items():
        opened = mia.open(f"/console/dashboards/{name}?{MARCH}")
        assert opened.status == 200, name
        painted = drawn(opened)
        assert list(painted) == CHARTS[name]
        assert all(pixels > 500 for pixels in painted.values()), (name, painted)
        assert cell(opened, table, row, column) == figure, name
        clean(opened)


def test_the_sla_chart_draws_the_80_percent_line_and_the_alarm_is_shown(mia: Visitor) -> None:
    opened = mia.open(f"/console/dashboards/sla?{MARCH}")
    drawn(opened)
    option = opened.page.evaluate(OPTION, "chart-sla-treatment")
    (line,) = option["series"][0]["markLine"]["data"]
    assert line["yAxis"] == 80 and line["name"] == "alarm under 80 %"
    bars = option["series"][0]["data"]
    assert bars[0] == {"value": 50, "itemStyle": {"color": ALERT}}  # Julien, under the line
    assert bars[1] == 100  # Luc
    alarm = opened.page.locator("#alarm")
    assert alarm.is_visible()
    assert f"ALARM: treatment rate 50.0 % for {JULIEN} is under 80%" in alarm.inner_text()
    assert "Dashed line: alarm under 80 %." in opened.text()
    # The tooltip is drawn on the canvas: hovering a bar breaks no policy either.
    box = opened.page.locator("#chart-sla-treatment").bounding_box()
    assert box is not None
    opened.page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
    opened.page.wait_for_timeout(300)
    clean(opened)


def test_deliverability_draws_the_two_limits(mia: Visitor) -> None:
    opened = mia.open(f"/console/dashboards/deliverability?{MARCH}")
    drawn(opened)
    option = opened.page.evaluate(OPTION, "chart-deliverability-rates")
    assert [line["yAxis"] for line in option["series"][0]["markLine"]["data"]] == [0.1, 0.3]
    clean(opened)


def test_the_pickers_change_the_figures(mia: Visitor) -> None:
    opened = mia.open(f"/console/dashboards/sources?{MARCH}")
    assert cell(opened, "table-sources", "google", "leads") == "2"
    opened.page.select_option("#attribution", "last")
    after = mia.click(opened, ".pickers button")
    assert "attribution=last" in after.page.url
    assert cell(after, "table-sources", "google", "leads") == "3"  # L3 came back by search
    drawn(after)
    clean(after)


def test_a_csv_downloaded_through_the_page_is_the_report_commands(
    mia: Visitor, report: Callable[..., Any], tmp_path: Path
) -> None:
    opened = mia.open(f"/console/dashboards/sources?{MARCH}&by=campaign")
    with opened.page.expect_download() as download:
        opened.page.click("#csv-sources")
    saved = tmp_path / "sources.csv"
    download.value.save_as(saved)
    assert download.value.suggested_filename == (
        "nurture-sources-2026-03-01-2026-03-31-by-campaign.csv"
    )
    done = report("sources", "--from", "2026-03-01", "--to", "2026-03-31", "--by", "campaign",
                  "--attribution", "first", "--format", "csv")  # fmt: skip
    assert saved.read_bytes() == done.output.encode()
    sources = [row[0] for row in csv.reader(io.StringIO(saved.read_text()))]
    assert "'" + HYPERLINK in sources and HYPERLINK not in sources  # a formula, as text
    clean(opened)


def test_a_cost_entered_through_the_form_changes_the_roi(mia: Visitor) -> None:
    sources = mia.open(f"/console/dashboards/sources?{MARCH}")
    assert cell(sources, "table-sources", "google", "ROI %") == "1,900.0"
    form = mia.open("/console/dashboards/costs")
    form.page.fill("#cost-source", "google")
    form.page.fill("#cost-campaign", "search")
    form.page.fill("#cost-month", "2026-03")
    form.page.fill("#cost-amount", "800")
    done = mia.click(form, ".cost-form button[type=submit]")
    assert done.status == 200
    said = done.page.locator("#cost-done").inner_text()
    assert "google / search 2026-03: 800.00 EUR (was 400.00 EUR)" in said
    clean(done)
    after = mia.click(done, "#cost-done a")  # the sources of that month
    assert cell(after, "table-sources", "google", "ROI %") == "900.0"
    drawn(after)
    roi = after.page.evaluate(OPTION, "chart-sources-roi")["series"][0]["data"]
    assert 900 in roi
    clean(after)


def test_a_wrong_amount_is_shown_beside_its_field(mia: Visitor) -> None:
    form = mia.open("/console/dashboards/costs")
    form.page.fill("#cost-source", "google")
    form.page.fill("#cost-month", "2026-03")
    form.page.fill("#cost-amount", "12,50")
    refused = mia.click(form, ".cost-form button[type=submit]")
    assert refused.status == 400
    assert refused.page.get_attribute("#cost-amount", "aria-invalid") == "true"
    problem = refused.page.locator("#cost-amount-problem").inner_text()
    assert problem.startswith("amount: expected a number such as 1200 or 1200.50")
    clean(refused)
